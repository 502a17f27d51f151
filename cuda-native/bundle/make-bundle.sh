#!/usr/bin/env bash
# Builds the self-contained GPU bundle in <repo>/.gpu (git-ignored): a jlink'd JDK 25 runtime (jre.tar.xz, ~13 MB),
# the project jars and their dependency jars (lib/), the test classes and the JUnit console launcher (to run the
# @Tag("gpu") tests on a machine that has a GPU but no Java or Maven). Run it from anywhere on the build machine:
#   cuda-native/bundle/make-bundle.sh            # cuda-native only
#   VLMFLUX_BUNDLE_MODULES=cuda-native,llm,demos cuda-native/bundle/make-bundle.sh
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
stamp=$(mktemp); trap 'rm -f "$stamp"' EXIT
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
# project jars of the modules built with -am (e.g. cuda-native for llm): every module jar this run produced
find "$root" -maxdepth 3 -path "*/target$suffix/vlmflux-*.jar" -newer "$stamp" -exec cp {} "$out/lib/" \;
# the JUnit console launcher (includes the Jupiter engine) runs tagged tests there
mvn -B -ntp -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:$junit_console \
    -DoutputDirectory="$out/lib" ${VLMFLUX_OFFLINE:+-o}
# GStreamer-only jars are not needed on the GPU machine
rm -f "$out"/lib/gst1-java-core-*.jar "$out"/lib/jna-*.jar
# VLMFLUX_BUNDLE_SLIM=1 (to fit a transfer limit with the repo copy): no chat templates (jinjava and what only it
# pulls in) and no test resources (tests find the fixtures in the repo through -Dvlmflux.root)
if [[ -n "${VLMFLUX_BUNDLE_SLIM:-}" ]]; then
  for j in jinjava guava failureaccess listenablefuture javassist commons-lang3 commons-net snakeyaml jackson-dataformat-yaml \
           jackson-datatype-jdk8 big-math java-ipv6 re2j checker-qual error_prone_annotations j2objc-annotations immutables-exceptions \
           annotations-3; do rm -f "$out"/lib/$j*.jar; done
  find "$out/test-classes" -type f ! -name '*.class' -delete
  find "$out/test-classes" -type d -empty -delete
fi

if [[ ! -f "$out/jre.tar.xz" || -n "${VLMFLUX_REBUILD_JRE:-}" ]]; then
  echo "[bundle] jlink runtime" >&2
  tmp=$(mktemp -d)
  "$JAVA_HOME/bin/jlink" --add-modules java.base,jdk.unsupported,java.logging,java.management \
      --strip-debug --no-header-files --no-man-pages --compress=zip-0 --output "$tmp/jre"
  tar -C "$tmp" -cJf "$out/jre.tar.xz" jre
  rm -rf "$tmp"
fi
du -sh "$out" "$out/jre.tar.xz" "$out/lib" >&2
echo "[bundle] ready: $out. On the GPU machine: cuda-native/bundle/run-on-gpu.sh tests" >&2
