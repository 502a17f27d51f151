#!/usr/bin/env bash
# Builds a portable GStreamer 1.22 (Debian 12 binaries) for a machine that has no GStreamer: OUTDIR/gst.tar.xz
# (~5 MB) holding lib/ (GStreamer, GLib/GObject/GIO, orc, openh264 and every other library they need except glibc,
# libstdc++ and libgcc_s, each under its soname plus an unversioned .so symlink for JNA), lib/gstreamer-1.0/ (the
# plugins below), libexec/gst-plugin-scanner and MANIFEST.txt (package versions + sha256 of the .debs used).
# On the target: `source cuda-native/bundle/gst-env.sh [TARBALL]` unpacks it and sets the environment (docs/gpu.md).
#   cuda-native/bundle/make-gst-bundle.sh .gpu
# Needs apt-get (Debian 12 sources), dpkg-deb, readelf, strip, xz. Installs nothing: packages are fetched with
# `apt-get download` into VLMFLUX_GST_DEBS (default ~/.cache/vlmflux/gst-debs) and unpacked with `dpkg-deb -x`.
# Reproducible: pass VLMFLUX_GST_VERSIONS=1 to fetch exactly the versions pinned below (else apt's candidates are
# used and recorded in MANIFEST.txt); the tarball has sorted entries, zero mtimes and root ownership.
# If the .deb cache already holds each package, no network is needed.
# If OUTDIR/lib exists (a make-bundle.sh bundle), the gst1-java-core and JNA jars are copied there too.
set -euo pipefail
[[ $# -eq 1 ]] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"; out=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
debs=${VLMFLUX_GST_DEBS:-$HOME/.cache/vlmflux/gst-debs}
arch=x86_64-linux-gnu

# package=version (Debian 12 "bookworm", with bookworm-security); the versions the bundle was verified with
packages=(
  libgstreamer1.0-0=1.22.0-2+deb12u1
  libgstreamer-plugins-base1.0-0=1.22.0-3+deb12u7
  gstreamer1.0-plugins-base=1.22.0-3+deb12u7
  gstreamer1.0-plugins-good=1.22.0-5+deb12u4
  libgstreamer-plugins-bad1.0-0=1.22.0-4+deb12u8
  gstreamer1.0-plugins-bad=1.22.0-4+deb12u8
  libopenh264-7=2.3.1+dfsg-3+deb12u2
  libglib2.0-0=2.74.6-2+deb12u9
  liborc-0.4-0=1:0.4.33-2
  libffi8=3.4.4-1
  libpcre2-8-0=10.42-1+deb12u2
  libmount1=2.38.1-5+deb12u3
  libblkid1=2.38.1-5+deb12u3
  libselinux1=3.4-1+b6
  zlib1g=1:1.2.13.dfsg-1
  libdw1=0.188-2.1
  libelf1=0.188-2.1
  liblzma5=5.4.1-1+deb12u2
  libbz2-1.0=1.0.8-5+b1
  libunwind8=1.6.2-3
)
# plugins: core elements (queue, capsfilter, filesrc, typefind), videotestsrc, videoconvert + videoscale, appsink,
# uridecodebin/decodebin, typefinders, videorate, pbtypes; qtdemux, RTP (de)payloaders, rtspsrc, udpsrc,
# rtpjitterbuffer; h264parse & co; openh264dec (H.264 decoder, 1 MB instead of libav's 20 MB)
# (VLMFLUX_GST_PLUGINS="..." replaces the list, e.g. without rtp rtsp udp rtpmanager for files and test sources only)
plugins=(coreelements videotestsrc videoconvertscale app playback typefindfunctions videorate pbtypes
         isomp4 rtp rtsp udp rtpmanager videoparsersbad openh264)
[[ -n "${VLMFLUX_GST_PLUGINS:-}" ]] && read -ra plugins <<< "$VLMFLUX_GST_PLUGINS"
# libraries the bindings open by name (FFM in io.vlmflux.sources.GstNative, JNA in gst1-java-core)
roots=(libgstreamer-1.0.so.0 libgstbase-1.0.so.0 libgstapp-1.0.so.0 libgstvideo-1.0.so.0 libgstaudio-1.0.so.0
       libgstpbutils-1.0.so.0 libgobject-2.0.so.0 libglib-2.0.so.0 libgmodule-2.0.so.0 libgio-2.0.so.0)
# left to the target's system: glibc, and the C++ runtime (Ubuntu 24.04's is newer than Debian 12's; shipping the
# older one would shadow it for CUDA libraries in the same process)
system_libs=" libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 ld-linux-x86-64.so.2 libstdc++.so.6 libgcc_s.so.1 "

mkdir -p "$debs"
specs=()
for p in "${packages[@]}"; do if [[ -n "${VLMFLUX_GST_VERSIONS:-}" ]]; then specs+=("$p"); else specs+=("${p%%=*}"); fi; done
# the cached .deb for "name" or "name=version" (newest file if no version is given); apt writes epochs as %3a
deb_for() {
  local name=${1%%=*} f
  if [[ $1 == *=* ]]; then
    for f in "$debs/${name}_"*.deb; do [[ -e $f && $(dpkg-deb -f "$f" Version) == "${1#*=}" ]] && { echo "$f"; return 0; }; done
    return 1
  fi
  f=$(ls -t "$debs/${name}_"*.deb 2>/dev/null | head -n1); [[ -n $f ]] && echo "$f"
}
missing=()
for s in "${specs[@]}"; do deb_for "$s" >/dev/null || missing+=("$s"); done
if (( ${#missing[@]} )); then
  echo "[gst-bundle] apt-get download ${#missing[@]} packages into $debs" >&2
  (cd "$debs" && apt-get download "${missing[@]}" 2>/tmp/vlmflux-apt-download.err) || {
    echo "[gst-bundle] apt-get download failed; retrying after apt-get update" >&2
    apt-get update -qq >&2 || true
    (cd "$debs" && apt-get download "${missing[@]}") || { cat /tmp/vlmflux-apt-download.err >&2; exit 1; }
  }
fi

stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
x="$stage/x"; b="$stage/gst"; mkdir -p "$x" "$b/lib/gstreamer-1.0" "$b/libexec" "$b/gio-modules"
{
  echo "Portable GStreamer for VLMFlux, built by cuda-native/bundle/make-gst-bundle.sh from these Debian packages:"
  for s in "${specs[@]}"; do
    f=$(deb_for "$s") || { echo "[gst-bundle] $s: no .deb in $debs after apt-get download" >&2; exit 1; }
    dpkg-deb -x "$f" "$x"
    echo "$(dpkg-deb -f "$f" Package)=$(dpkg-deb -f "$f" Version) sha256:$(sha256sum "$f" | cut -c1-64)"
  done
} > "$b/MANIFEST.txt"

libdirs=("$x/usr/lib/$arch" "$x/lib/$arch")
find_lib() { local d; for d in "${libdirs[@]}"; do [[ -e "$d/$1" ]] && { echo "$d/$1"; return 0; }; done; return 1; }

# copy the roots, plugins and scanner, then close over DT_NEEDED within the unpacked packages
queue=()
for p in "${plugins[@]}"; do
  f="$x/usr/lib/$arch/gstreamer-1.0/libgst$p.so"
  [[ -f "$f" ]] || { echo "[gst-bundle] plugin $p not found ($f) in the unpacked packages" >&2; exit 1; }
  cp "$f" "$b/lib/gstreamer-1.0/"; queue+=("$f")
done
scanner="$x/usr/lib/$arch/gstreamer1.0/gstreamer-1.0/gst-plugin-scanner"
cp "$scanner" "$b/libexec/"; queue+=("$scanner")
declare -A have=()
add_lib() { # soname wanted-by
  [[ -n "${have[$1]:-}" ]] && return 0
  [[ $system_libs == *" $1 "* ]] && return 0
  local f; f=$(find_lib "$1") || { echo "[gst-bundle] $2 needs $1, which none of the listed packages provides" >&2; exit 1; }
  have[$1]=1; cp -L "$f" "$b/lib/$1"; queue+=("$b/lib/$1")
}
for r in "${roots[@]}"; do add_lib "$r" "the Java bindings"; done
while (( ${#queue[@]} )); do
  f=${queue[0]}; queue=("${queue[@]:1}")
  for n in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do add_lib "$n" "$(basename "$f")"; done
done
# JNA (gst1-java-core) maps "gstreamer-1.0" to libgstreamer-1.0.so: without it in jna.library.path it searches the
# system and may load a second GLib; one unversioned symlink per library prevents that
(cd "$b/lib" && for f in *.so.*; do ln -sf "$f" "${f%%.so.*}.so"; done)
strip --strip-unneeded "$b"/lib/*.so.* "$b"/lib/gstreamer-1.0/*.so "$b/libexec/gst-plugin-scanner" 2>/dev/null || true
cp "$root/cuda-native/bundle/gst-env.sh" "$b/"

tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" -cf - gst | xz -9 -T1 > "$out/gst.tar.xz"
echo "[gst-bundle] $(ls "$b/lib" | grep -c '\.so\.') libraries, ${#plugins[@]} plugins; $(du -sh "$b" | cut -f1) unpacked," \
     "$(du -h "$out/gst.tar.xz" | cut -f1) as $out/gst.tar.xz" >&2

# the Java side of GStreamer (make-bundle.sh leaves these two jars out)
if [[ -d "$out/lib" ]]; then
  export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
  (cd "$root" && mvn -B -ntp -q ${VLMFLUX_OFFLINE:+-o} -pl sources dependency:copy-dependencies -DincludeScope=runtime \
      -DincludeArtifactIds=gst1-java-core,jna -DoutputDirectory="$out/lib" "-Dvlmflux.buildSuffix=${VLMFLUX_BUILD_SUFFIX:--gpu}")
  echo "[gst-bundle] added $(cd "$out/lib" && ls gst1-java-core-*.jar jna-*.jar | tr '\n' ' ')to $out/lib" >&2
fi
