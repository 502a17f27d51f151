#!/usr/bin/env bash
# Builds the self-contained GPU bundle in <repo>/.gpu (git-ignored): a jlink'd JDK 25 runtime (jre.tar.xz, ~13 MB),
# the project jars and their dependency jars (lib/), the test classes and the JUnit console launcher (to run the
# @Tag("gpu") tests on a machine that has a GPU but no Java or Maven). Run it from anywhere on the build machine:
#   cuda-native/bundle/make-bundle.sh            # cuda-native only
#   VLMFLUX_BUNDLE_MODULES=cuda-native,llm,demos cuda-native/bundle/make-bundle.sh
# Options (environment):
#   VLMFLUX_BUNDLE_DIR=DIR   output folder (default <repo>/.gpu)
#   VLMFLUX_BUNDLE_GST=1     also the portable GStreamer (make-gst-bundle.sh: DIR/gst.tar.xz, ~5 MB) and keep the
#                            gst1-java-core/JNA jars, so sources (test:, files, RTSP) run on the GPU machine
#   VLMFLUX_JRE_MODULES=a,b  jlink modules; default: the CLI set (java.desktop for ImageIO,
#                            jdk.incubator.vector for the CPU kernels) when the demos or pipeline module is bundled,
#                            else the minimal set. The jre is rebuilt when the set changes (DIR/jre.modules).
# Then on the GPU machine (repo copy + .gpu): cuda-native/bundle/run-on-gpu.sh tests   (see docs/gpu.md)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${VLMFLUX_BUNDLE_DIR:-$root/.gpu}
[[ "$out" = /* ]] || out="$PWD/$out"   # absolute: maven resolves relative -DoutputDirectory per module
suffix=${VLMFLUX_BUILD_SUFFIX:--gpu}
modules=${VLMFLUX_BUNDLE_MODULES:-cuda-native}
junit_console=1.11.4
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
mvn_opts=(-B -ntp -q "-Dvlmflux.buildSuffix=$suffix")
[[ -n "${VLMFLUX_OFFLINE:-}" ]] && mvn_opts+=(-o)

mkdir -p "$out/lib" "$out/test-classes"
rm -f "$out"/lib/*.jar
cd "$root"
echo "[bundle] building $modules (suffix $suffix)" >&2
rm -f "$root"/*/target"$suffix"/vlmflux-*.jar   # so every module jar of this -am build is newer than the stamp
mvn "${mvn_opts[@]}" -pl "$modules" -am -DskipTests package
mvn "${mvn_opts[@]}" -pl "$modules" -am test-compile
IFS=, read -ra mods <<< "$modules"
for m in "${mods[@]}"; do
  cp "$m/target$suffix"/*.jar "$out/lib/" 2>/dev/null || true
  mvn "${mvn_opts[@]}" -pl "$m" dependency:copy-dependencies -DincludeScope=runtime -DexcludeGroupIds=io.vlmflux \
      -DoutputDirectory="$out/lib"
  if [[ -d "$m/target$suffix/test-classes" ]]; then cp -r "$m/target$suffix/test-classes/." "$out/test-classes/"; fi
done
# project jars of the modules built with -am (e.g. cuda-native for llm): every module jar that exists now was made by
# this run (all were deleted before it). No `-newer stamp` test: it let an unchanged module's jar go missing from the
# bundle (an up-to-date jar is not necessarily newer than the stamp); deleting first is the guarantee we need.
find "$root" -maxdepth 3 -path "*/target$suffix/vlmflux-*.jar" ! -name '*-sources.jar' ! -name '*-tests.jar' -exec cp {} "$out/lib/" \;
# the JUnit console launcher (includes the Jupiter engine) runs tagged tests there
mvn -B -ntp -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:$junit_console \
    -DoutputDirectory="$out/lib" ${VLMFLUX_OFFLINE:+-o}
# GStreamer-only jars are not needed on the GPU machine unless the portable GStreamer travels too
if [[ -z "${VLMFLUX_BUNDLE_GST:-}" ]]; then rm -f "$out"/lib/gst1-java-core-*.jar "$out"/lib/jna-*.jar; fi
# VLMFLUX_BUNDLE_SLIM=1 (to fit a transfer limit with the repo copy): no test resources (tests find the fixtures in
# the repo through -Dvlmflux.root). The chat-template engine is part of llm and needs no jar.
if [[ -n "${VLMFLUX_BUNDLE_SLIM:-}" ]]; then
  find "$out/test-classes" -type f ! -name '*.class' -delete
  find "$out/test-classes" -type d -empty -delete
fi

jre_modules=java.base,jdk.unsupported,java.logging,java.management
case ",$modules," in *,demos,*|*,pipeline,*) jre_modules=$jre_modules,java.desktop,java.net.http,jdk.incubator.vector ;; esac
jre_modules=${VLMFLUX_JRE_MODULES:-$jre_modules}
if [[ ! -f "$out/jre.tar.xz" || -n "${VLMFLUX_REBUILD_JRE:-}" || "$(cat "$out/jre.modules" 2>/dev/null)" != "$jre_modules" ]]; then
  echo "[bundle] jlink runtime: $jre_modules" >&2
  tmp=$(mktemp -d)
  # ImageIO needs libawt (headless) and liblcms; the X11, font, splash and sound natives are never loaded: left out
  "$JAVA_HOME/bin/jlink" --add-modules "$jre_modules" \
      --exclude-files='glob:**/lib/libawt_xawt.so,glob:**/lib/libfontmanager.so,glob:**/lib/libsplashscreen.so,glob:**/lib/libjsound.so' \
      --strip-debug --no-header-files --no-man-pages --compress=zip-0 --output "$tmp/jre"
  tar -C "$tmp" -cJf "$out/jre.tar.xz" jre
  echo "$jre_modules" > "$out/jre.modules"
  rm -rf "$tmp"
fi
if [[ -n "${VLMFLUX_BUNDLE_GST:-}" ]]; then
  echo "[bundle] portable GStreamer" >&2
  "$root/cuda-native/bundle/make-gst-bundle.sh" "$out"
fi
du -sh "$out" "$out/jre.tar.xz" "$out/lib" ${VLMFLUX_BUNDLE_GST:+"$out/gst.tar.xz"} >&2
echo "[bundle] ready: $out. On the GPU machine: cuda-native/bundle/run-on-gpu.sh tests" >&2
