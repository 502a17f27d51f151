#!/usr/bin/env bash
# Builds mega_harness once per variant into one xz tarball for `e2e-gpu-run.sh mega-builds` (one device call times them
# all against each other). A variant is NAME=REV[:NVCC FLAGS]: the harness and kernels of git revision REV (a commit,
# branch or "WORKTREE" for the checkout as it is), built with those extra flags, e.g.
#   cuda-native/bundle/mega-builds.sh A=1d90f50 B=main "E0=main:-DVF_MEGA_FORM=0" "D0=wip/mega-outlined:-DVF_MEGA_FORM=0"
# Writes .gpu-e2e/mega-builds.tar.xz (binaries megah-NAME).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
pids=()
for spec in "$@"; do
  name=${spec%%=*}; rest=${spec#*=}; rev=${rest%%:*}; flags=""; [[ "$rest" == *:* ]] && flags=${rest#*:}
  src=$work/src-$name; mkdir -p "$src"
  if [[ "$rev" == WORKTREE ]]; then mkdir -p "$src/cuda-native" && cp -r "$root/cuda-native/src" "$src/cuda-native/"; else git -C "$root" archive "$rev" cuda-native/src | tar -x -C "$src"; fi
  # shellcheck disable=SC2086
  (cd "$src" && nvcc -O3 -std=c++17 -arch=sm_90 $flags -o "$work/bin/megah-$name" cuda-native/src/test/cuda/mega_harness.cu) &
  pids+=("$!:$name")
done
failed=0
for p in "${pids[@]}"; do wait "${p%%:*}" || { echo "mega-builds: variant ${p#*:} did not build" >&2; failed=1; }; done
(( failed == 0 )) || exit 1
mkdir -p "$root/.gpu-e2e"
tar -C "$work/bin" -cf - . | xz -9 -T0 > "$root/.gpu-e2e/mega-builds.tar.xz"
ls -la "$root/.gpu-e2e/mega-builds.tar.xz"
