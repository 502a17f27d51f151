# Sourced (bash) on a machine without GStreamer, to use the portable one made by make-gst-bundle.sh:
#   source cuda-native/bundle/gst-env.sh [.gpu/gst.tar.xz | UNPACKED_DIR]
# Unpacks the tarball once into VLMFLUX_GST_DIR (default /tmp/vlmflux-gst) and points everything at it alone:
# LD_LIBRARY_PATH (FFM's SymbolLookup.libraryLookup by soname and the plugins' own DT_NEEDED go through dlopen),
# jna.library.path via JAVA_TOOL_OPTIONS and VLMFLUX_JAVA_OPTS (JNA then opens the unversioned symlinks there instead
# of searching the system: two GLibs in one process crash the JVM), the plugin path (no system or user plugins),
# the plugin scanner, a registry file in /tmp, and an empty GIO module folder (a newer system GIO's modules must not
# load into this GLib). Sets VLMFLUX_GST_HOME. Safe to source more than once.
_vf_gst_arg=${1:-}
_vf_gst_self=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -z "$_vf_gst_arg" && -e "$_vf_gst_self/lib/libgstreamer-1.0.so.0" ]]; then
  _vf_gst_home=$_vf_gst_self                      # this copy sits inside an unpacked bundle
elif [[ -n "$_vf_gst_arg" && -d "$_vf_gst_arg" ]]; then
  _vf_gst_home=$(cd "$_vf_gst_arg" && pwd); [[ -e "$_vf_gst_home/lib" ]] || _vf_gst_home=$_vf_gst_home/gst
else
  _vf_gst_tar=${_vf_gst_arg:-${VLMFLUX_GST_TAR:-$_vf_gst_self/../../.gpu/gst.tar.xz}}
  _vf_gst_dir=${VLMFLUX_GST_DIR:-/tmp/vlmflux-gst}
  _vf_gst_home=$_vf_gst_dir/gst
  if [[ ! -e "$_vf_gst_home/lib/libgstreamer-1.0.so.0" || "$_vf_gst_tar" -nt "$_vf_gst_home/MANIFEST.txt" ]]; then
    if [[ ! -f "$_vf_gst_tar" ]]; then
      echo "gst-env.sh: no GStreamer bundle at $_vf_gst_tar (make it with cuda-native/bundle/make-gst-bundle.sh .gpu)" >&2
      return 1 2>/dev/null || exit 1
    fi
    rm -rf "$_vf_gst_home" && mkdir -p "$_vf_gst_dir" && tar -xJf "$_vf_gst_tar" -C "$_vf_gst_dir" && touch "$_vf_gst_home/MANIFEST.txt" \
      || { echo "gst-env.sh: could not unpack $_vf_gst_tar into $_vf_gst_dir" >&2; return 1 2>/dev/null || exit 1; }
  fi
fi
if [[ ! -e "$_vf_gst_home/lib/libgstreamer-1.0.so.0" ]]; then
  echo "gst-env.sh: $_vf_gst_home/lib/libgstreamer-1.0.so.0 missing: not a bundle from make-gst-bundle.sh" >&2
  return 1 2>/dev/null || exit 1
fi
export VLMFLUX_GST_HOME=$_vf_gst_home
case ":${LD_LIBRARY_PATH:-}:" in *":$_vf_gst_home/lib:"*) ;; *) export LD_LIBRARY_PATH=$_vf_gst_home/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} ;; esac
export GST_PLUGIN_SYSTEM_PATH_1_0=$_vf_gst_home/lib/gstreamer-1.0 GST_PLUGIN_SYSTEM_PATH=$_vf_gst_home/lib/gstreamer-1.0
unset GST_PLUGIN_PATH GST_PLUGIN_PATH_1_0
export GST_PLUGIN_SCANNER_1_0=$_vf_gst_home/libexec/gst-plugin-scanner GST_PLUGIN_SCANNER=$_vf_gst_home/libexec/gst-plugin-scanner
export GST_REGISTRY_1_0=${TMPDIR:-/tmp}/vlmflux-gst-registry-$(id -u).bin GST_REGISTRY=${TMPDIR:-/tmp}/vlmflux-gst-registry-$(id -u).bin
export GIO_MODULE_DIR=$_vf_gst_home/gio-modules GIO_USE_VFS=local
_vf_gst_jna="-Djna.library.path=$_vf_gst_home/lib"
case " ${JAVA_TOOL_OPTIONS:-} " in *" $_vf_gst_jna "*) ;; *) export JAVA_TOOL_OPTIONS="${JAVA_TOOL_OPTIONS:+$JAVA_TOOL_OPTIONS }$_vf_gst_jna" ;; esac
case " ${VLMFLUX_JAVA_OPTS:-} " in *" $_vf_gst_jna "*) ;; *) export VLMFLUX_JAVA_OPTS="${VLMFLUX_JAVA_OPTS:+$VLMFLUX_JAVA_OPTS }$_vf_gst_jna" ;; esac
unset _vf_gst_arg _vf_gst_self _vf_gst_home _vf_gst_tar _vf_gst_dir _vf_gst_jna
