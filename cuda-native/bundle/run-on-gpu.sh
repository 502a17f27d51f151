#!/usr/bin/env bash
# Runs on the GPU machine from the repo root, with the bundle made by make-bundle.sh in .gpu/.
#   run-on-gpu.sh tests [extra JUnit console args]   -> all @Tag("gpu") tests (or those of --select-class NAME ...) (tree of results on stdout; the jlink runtime has no java.xml for XML reports)
#   run-on-gpu.sh java  MAIN_CLASS [args]            -> any main class of the bundled jars
#   run-on-gpu.sh vlmflux ARGS...                     -> the vlmflux CLI (bundle made with the demos module), e.g.
#                                                        run-on-gpu.sh vlmflux bench llm --backend cuda --model DIR --json
# Needs only the NVIDIA driver and CUDA 13.0 libraries (LD_LIBRARY_PATH defaults to /usr/local/cuda/lib64).
# GStreamer: with BUNDLE/gst.tar.xz (VLMFLUX_BUNDLE_GST=1 make-bundle.sh), or VLMFLUX_GST=TARBALL|UNPACKED_DIR, the
# portable GStreamer is set up through gst-env.sh before java starts. VLMFLUX_JRE_DIR: where the runtime is unpacked
# (default /tmp/vlmflux-jre; once unpacked, jre.tar.xz need not travel again on a warm machine).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
bundle=${VLMFLUX_BUNDLE_DIR:-$here/.gpu}
jre_dir=${VLMFLUX_JRE_DIR:-/tmp/vlmflux-jre}
if [[ ! -x "$jre_dir/jre/bin/java" || ( -f "$bundle/jre.tar.xz" && "$bundle/jre.tar.xz" -nt "$jre_dir/jre/release" ) ]]; then
  rm -rf "$jre_dir/jre" && mkdir -p "$jre_dir" && tar -xJf "$bundle/jre.tar.xz" -C "$jre_dir" && touch "$jre_dir/jre/release"
fi
if [[ -n "${VLMFLUX_GST:-}" ]]; then source "$here/cuda-native/bundle/gst-env.sh" "$VLMFLUX_GST"
elif [[ -f "$bundle/gst.tar.xz" ]]; then source "$here/cuda-native/bundle/gst-env.sh" "$bundle/gst.tar.xz"; fi
export LD_LIBRARY_PATH=${CUDA_LIB:-/usr/local/cuda/lib64}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
java=("$jre_dir/jre/bin/java" --enable-native-access=ALL-UNNAMED "-Xmx${VLMFLUX_XMX:-8g}" -Djava.awt.headless=true "-Dvlmflux.root=$here")
grep -q jdk.incubator.vector "$jre_dir/jre/release" && java+=(--add-modules jdk.incubator.vector)
java+=(${VLMFLUX_JAVA_OPTS:-})
cp=$(ls "$bundle"/lib/*.jar | grep -v junit-platform-console-standalone | tr '\n' ':')
cmd=${1:-tests}; shift || true
case "$cmd" in
  tests)   # extra args with explicit selectors (--select-class X ...) replace the class-path scan
    scan=(--scan-class-path "$bundle/test-classes")
    for a in "$@"; do [[ "$a" == --select* ]] && scan=(); done
    "${java[@]}" -jar "$bundle"/lib/junit-platform-console-standalone-*.jar execute \
      --class-path "$cp$bundle/test-classes" "${scan[@]}" --include-tag gpu \
      --details tree --disable-banner "$@" ;;
  java)
    "${java[@]}" -cp "$cp$bundle/test-classes" "$@" ;;
  vlmflux)
    "${java[@]}" -cp "$cp$bundle/test-classes" io.vlmflux.demos.Main "$@" ;;
  *) echo "usage: $0 tests|java|vlmflux ..." >&2; exit 2 ;;
esac
