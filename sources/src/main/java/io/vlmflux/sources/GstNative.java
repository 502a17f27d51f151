package io.vlmflux.sources;

import org.freedesktop.gstreamer.Gst;
import org.freedesktop.gstreamer.Version;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.concurrent.atomic.AtomicInteger;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The few GStreamer C calls the frame sources need, bound with the FFM API. GStreamer itself is initialised once per
 * JVM through gst1-java-core ({@link Gst#init}); everything on the per-frame path (pull a sample, map its buffer, read
 * its caps) and the pipeline lifecycle go through these handles, so lifetimes are explicit (no finalizers, no JNA
 * callbacks from streaming threads). All pointers are raw {@code long}-backed {@link MemorySegment}s; callers own the
 * references they get back exactly as the C documentation says.
 */
final class GstNative {
    private GstNative() {}

    // GstState / GstStateChangeReturn / GstMessageType / GstMapFlags
    static final int STATE_NULL = 1, STATE_READY = 2, STATE_PAUSED = 3, STATE_PLAYING = 4;
    static final int CHANGE_FAILURE = 0, CHANGE_SUCCESS = 1, CHANGE_ASYNC = 2, CHANGE_NO_PREROLL = 3;
    static final int MSG_EOS = 1, MSG_ERROR = 1 << 1, MSG_WARNING = 1 << 2;
    static final int MAP_READ = 1;
    static final long CLOCK_TIME_NONE = -1L;
    /** sizeof(GstMapInfo) on LP64: memory, flags, data, size, maxsize, user_data[4], _gst_reserved[4]. */
    static final long MAP_INFO_SIZE = 104;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBS;
    private static final AtomicInteger LIVE_PIPELINES = new AtomicInteger();
    private static volatile boolean initialised;

    static {
        Arena g = Arena.global();
        LIBS = SymbolLookup.libraryLookup("libgstreamer-1.0.so.0", g)
                .or(SymbolLookup.libraryLookup("libgstapp-1.0.so.0", g))
                .or(SymbolLookup.libraryLookup("libgstvideo-1.0.so.0", g))
                .or(SymbolLookup.libraryLookup("libgobject-2.0.so.0", g))
                .or(SymbolLookup.libraryLookup("libglib-2.0.so.0", g));
    }

    private static MethodHandle fn(String name, MemoryLayout ret, MemoryLayout... args) {
        MemorySegment addr = LIBS.find(name).orElseThrow(() -> new UnsatisfiedLinkError("GStreamer symbol " + name + " not found"));
        FunctionDescriptor d = ret == null ? FunctionDescriptor.ofVoid(args) : FunctionDescriptor.of(ret, args);
        return LINKER.downcallHandle(addr, d);
    }

    private static final MethodHandle PARSE_LAUNCH = fn("gst_parse_launch", ADDRESS, ADDRESS, ADDRESS);
    private static final MethodHandle OBJECT_REF_SINK = fn("gst_object_ref_sink", ADDRESS, ADDRESS);
    private static final MethodHandle OBJECT_UNREF = fn("gst_object_unref", null, ADDRESS);
    private static final MethodHandle OBJECT_GET_NAME = fn("gst_object_get_name", ADDRESS, ADDRESS);
    private static final MethodHandle SET_STATE = fn("gst_element_set_state", JAVA_INT, ADDRESS, JAVA_INT);
    private static final MethodHandle GET_STATE = fn("gst_element_get_state", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG);
    private static final MethodHandle BIN_GET_BY_NAME = fn("gst_bin_get_by_name", ADDRESS, ADDRESS, ADDRESS);
    private static final MethodHandle ELEMENT_GET_BUS = fn("gst_element_get_bus", ADDRESS, ADDRESS);
    private static final MethodHandle BUS_POP_FILTERED = fn("gst_bus_pop_filtered", ADDRESS, ADDRESS, JAVA_INT);
    private static final MethodHandle MESSAGE_PARSE_ERROR = fn("gst_message_parse_error", null, ADDRESS, ADDRESS, ADDRESS);
    private static final MethodHandle MESSAGE_PARSE_WARNING = fn("gst_message_parse_warning", null, ADDRESS, ADDRESS, ADDRESS);
    private static final MethodHandle MINI_OBJECT_UNREF = fn("gst_mini_object_unref", null, ADDRESS);
    private static final MethodHandle MINI_OBJECT_REF = fn("gst_mini_object_ref", ADDRESS, ADDRESS);
    private static final MethodHandle SAMPLE_GET_BUFFER = fn("gst_sample_get_buffer", ADDRESS, ADDRESS);
    private static final MethodHandle SAMPLE_GET_CAPS = fn("gst_sample_get_caps", ADDRESS, ADDRESS);
    private static final MethodHandle BUFFER_MAP = fn("gst_buffer_map", JAVA_INT, ADDRESS, ADDRESS, JAVA_INT);
    private static final MethodHandle BUFFER_UNMAP = fn("gst_buffer_unmap", null, ADDRESS, ADDRESS);
    private static final MethodHandle BUFFER_GET_META = fn("gst_buffer_get_meta", ADDRESS, ADDRESS, JAVA_LONG);
    private static final MethodHandle CAPS_GET_STRUCTURE = fn("gst_caps_get_structure", ADDRESS, ADDRESS, JAVA_INT);
    private static final MethodHandle CAPS_TO_STRING = fn("gst_caps_to_string", ADDRESS, ADDRESS);
    private static final MethodHandle STRUCTURE_GET_INT = fn("gst_structure_get_int", JAVA_INT, ADDRESS, ADDRESS, ADDRESS);
    private static final MethodHandle STRUCTURE_GET_STRING = fn("gst_structure_get_string", ADDRESS, ADDRESS, ADDRESS);
    private static final MethodHandle STRUCTURE_GET_FRACTION = fn("gst_structure_get_fraction", JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS);
    private static final MethodHandle SET_OBJECT_ARG = fn("gst_util_set_object_arg", null, ADDRESS, ADDRESS, ADDRESS);
    private static final MethodHandle APPSINK_TRY_PULL = fn("gst_app_sink_try_pull_sample", ADDRESS, ADDRESS, JAVA_LONG);
    private static final MethodHandle APPSINK_IS_EOS = fn("gst_app_sink_is_eos", JAVA_INT, ADDRESS);
    private static final MethodHandle APPSRC_PUSH_BUFFER = fn("gst_app_src_push_buffer", JAVA_INT, ADDRESS, ADDRESS);
    private static final MethodHandle BUFFER_NEW_ALLOCATE = fn("gst_buffer_new_allocate", ADDRESS, ADDRESS, JAVA_LONG, ADDRESS);
    private static final MethodHandle BUFFER_FILL = fn("gst_buffer_fill", JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG);
    private static final MethodHandle VIDEO_INFO_NEW_FROM_CAPS = fn("gst_video_info_new_from_caps", ADDRESS, ADDRESS);
    private static final MethodHandle VIDEO_INFO_FREE = fn("gst_video_info_free", null, ADDRESS);
    private static final MethodHandle VIDEO_COLORIMETRY_TO_STRING = fn("gst_video_colorimetry_to_string", ADDRESS, ADDRESS);
    private static final MethodHandle VIDEO_META_API_TYPE = fn("gst_video_meta_api_get_type", JAVA_LONG);
    private static final MethodHandle G_FREE = fn("g_free", null, ADDRESS);
    private static final MethodHandle G_MALLOC0 = fn("g_malloc0", ADDRESS, JAVA_LONG);
    private static final MethodHandle G_ERROR_FREE = fn("g_error_free", null, ADDRESS);
    private static final MethodHandle G_QUARK_TO_STRING = fn("g_quark_to_string", ADDRESS, JAVA_INT);
    private static final MethodHandle QUERY_DURATION = fn("gst_element_query_duration", JAVA_INT, ADDRESS, JAVA_INT, ADDRESS);
    private static final int FORMAT_TIME = 3;

    private static final MethodHandle WEAK_REF = fn("g_object_weak_ref", null, ADDRESS, ADDRESS, ADDRESS);
    /** GWeakNotify(gpointer data, GObject *where_the_object_was): only decrements a counter, never blocks. */
    private static final MemorySegment ON_FINALIZED;

    static {
        try {
            MethodHandle target = java.lang.invoke.MethodHandles.lookup().findStatic(GstNative.class, "onFinalized",
                    java.lang.invoke.MethodType.methodType(void.class, MemorySegment.class, MemorySegment.class));
            ON_FINALIZED = LINKER.upcallStub(target, FunctionDescriptor.ofVoid(ADDRESS, ADDRESS), Arena.global());
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private static void onFinalized(MemorySegment data, MemorySegment object) {
        LIVE_PIPELINES.decrementAndGet();
    }

    private static volatile long videoMetaApi;

    /** Initialises GStreamer once per JVM (gst1-java-core's {@code Gst.init}, guarded). */
    static void init() {
        if (initialised) return;
        synchronized (GstNative.class) {
            if (initialised) return;
            if (!Gst.isInitialized()) Gst.init(new Version(1, 16), "vlmflux");
            initialised = true;
        }
    }

    /** Pipelines created by {@link #parseLaunch} and not yet destroyed by {@link #destroyPipeline}. */
    static int livePipelines() { return LIVE_PIPELINES.get(); }

    /** Parses a launch line into an owned (ref-sunk) pipeline; throws with GStreamer's parse error. */
    static MemorySegment parseLaunch(String line) {
        init();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment err = a.allocate(ADDRESS);
            MemorySegment p = (MemorySegment) PARSE_LAUNCH.invokeExact(a.allocateFrom(line), err);
            MemorySegment gerr = err.get(ADDRESS, 0);
            if (!isNull(gerr)) {
                String msg = gerrorMessage(gerr);
                G_ERROR_FREE.invokeExact(gerr);
                if (!isNull(p)) { MemorySegment sunk = (MemorySegment) OBJECT_REF_SINK.invokeExact(p); OBJECT_UNREF.invokeExact(sunk); }
                throw new IllegalStateException("cannot build the pipeline: " + msg);
            }
            if (isNull(p)) throw new IllegalStateException("cannot build the pipeline (gst_parse_launch returned nothing)");
            MemorySegment sunk = (MemorySegment) OBJECT_REF_SINK.invokeExact(p);
            LIVE_PIPELINES.incrementAndGet();
            WEAK_REF.invokeExact(sunk, ON_FINALIZED, MemorySegment.NULL);
            return sunk;
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    /**
     * Sets state NULL (waiting for it) and drops our reference. The pipeline counts as gone when GObject finalizes it
     * (a weak-ref notify, which may run on whichever thread drops the last reference), so {@link #livePipelines}
     * exposes pipelines that something still holds.
     */
    static void destroyPipeline(MemorySegment pipeline) {
        if (isNull(pipeline)) return;
        setState(pipeline, STATE_NULL);
        unrefObject(pipeline);
    }

    static int setState(MemorySegment element, int state) {
        try { return (int) SET_STATE.invokeExact(element, state); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Waits up to {@code timeoutNanos} for a pending state change; returns the GstStateChangeReturn. */
    static int waitState(MemorySegment element, long timeoutNanos) {
        try { return (int) GET_STATE.invokeExact(element, MemorySegment.NULL, MemorySegment.NULL, timeoutNanos); }
        catch (Throwable t) { throw rethrow(t); }
    }

    /** Element by name (owned reference) or NULL. */
    static MemorySegment binGetByName(MemorySegment bin, String name) {
        try (Arena a = Arena.ofConfined()) {
            return (MemorySegment) BIN_GET_BY_NAME.invokeExact(bin, a.allocateFrom(name));
        } catch (Throwable t) { throw rethrow(t); }
    }

    static MemorySegment getBus(MemorySegment element) {
        try { return (MemorySegment) ELEMENT_GET_BUS.invokeExact(element); } catch (Throwable t) { throw rethrow(t); }
    }

    static void unrefObject(MemorySegment obj) {
        if (isNull(obj)) return;
        try { OBJECT_UNREF.invokeExact(obj); } catch (Throwable t) { throw rethrow(t); }
    }

    static void unrefMini(MemorySegment obj) {
        if (isNull(obj)) return;
        try { MINI_OBJECT_UNREF.invokeExact(obj); } catch (Throwable t) { throw rethrow(t); }
    }

    static MemorySegment refMini(MemorySegment obj) {
        try { return (MemorySegment) MINI_OBJECT_REF.invokeExact(obj); } catch (Throwable t) { throw rethrow(t); }
    }

    /** Sets a property from its string form (as gst-launch would), e.g. {@code ("max-buffers", "2")}. */
    static void setProperty(MemorySegment obj, String name, String value) {
        try (Arena a = Arena.ofConfined()) {
            SET_OBJECT_ARG.invokeExact(obj, a.allocateFrom(name), a.allocateFrom(value));
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** A bus message of one of {@code types}, or null; the message is parsed and released here. */
    static BusMessage popMessage(MemorySegment bus, int types) {
        try {
            MemorySegment msg = (MemorySegment) BUS_POP_FILTERED.invokeExact(bus, types);
            if (isNull(msg)) return null;
            try {
                MemorySegment m = msg.reinterpret(96);
                int type = m.get(JAVA_INT, 64);
                String src = objectName(m.get(ADDRESS, 80));
                if (type == MSG_ERROR || type == MSG_WARNING) {
                    try (Arena a = Arena.ofConfined()) {
                        MemorySegment err = a.allocate(ADDRESS), dbg = a.allocate(ADDRESS);
                        if (type == MSG_ERROR) MESSAGE_PARSE_ERROR.invokeExact(msg, err, dbg);
                        else MESSAGE_PARSE_WARNING.invokeExact(msg, err, dbg);
                        MemorySegment e = err.get(ADDRESS, 0), d = dbg.get(ADDRESS, 0);
                        String text = isNull(e) ? "unknown error" : gerrorMessage(e);
                        String domain = null;
                        int code = 0;
                        if (!isNull(e)) {
                            MemorySegment ge = e.reinterpret(16);
                            MemorySegment q = (MemorySegment) G_QUARK_TO_STRING.invokeExact(ge.get(JAVA_INT, 0));
                            domain = isNull(q) ? null : cString(q);
                            code = ge.get(JAVA_INT, 4);
                        }
                        String debug = isNull(d) ? null : cString(d);
                        if (!isNull(e)) G_ERROR_FREE.invokeExact(e);
                        if (!isNull(d)) G_FREE.invokeExact(d);
                        return new BusMessage(type, src, text, debug, domain, code);
                    }
                }
                return new BusMessage(type, src, null, null, null, 0);
            } finally {
                MINI_OBJECT_UNREF.invokeExact(msg);
            }
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** GstResourceError codes that mean "will not work however often it is retried". */
    static final int RESOURCE_NOT_FOUND = 3, RESOURCE_NOT_AUTHORIZED = 15;

    /**
     * A parsed bus message; {@code domain} is the GError domain (e.g. {@code gst-resource-error-quark}) and
     * {@code code} its code, both of errors and warnings.
     */
    record BusMessage(int type, String source, String text, String debug, String domain, int code) {
        BusMessage(int type, String source, String text, String debug) { this(type, source, text, debug, null, 0); }

        /**
         * A resource that is not there or refuses us (HTTP/RTSP 404, 401, 403, bad credentials): retrying cannot help.
         * Name resolution failures are not permanent.
         */
        boolean isPermanent() {
            // a host name that does not resolve now may resolve later (DNS, network coming up): retried
            if (text != null && text.toLowerCase(java.util.Locale.ROOT).contains("resolve")) return false;
            if ("gst-resource-error-quark".equals(domain) && (code == RESOURCE_NOT_FOUND || code == RESOURCE_NOT_AUTHORIZED)) return true;
            String t = text == null ? "" : text;
            return t.matches("(?s).*\\b(401|403|404)\\b.*") || t.contains("Unauthorized") || t.contains("Forbidden")
                    || t.contains("Not Found") || t.contains("Not Authorized") || t.contains("authenticat");
        }

        String describe() {
            StringBuilder sb = new StringBuilder(text == null ? "" : text);
            if (source != null) sb.append(" (from ").append(source).append(')');
            if (debug != null && !debug.isBlank()) {
                String d = debug.strip();
                // decodebin lists one "Missing decoder: ..." line per stream it could not handle; name them all
                // (the last line alone may be an audio stream while the video decoder is what is missing)
                String missing = d.lines().map(String::strip).filter(l -> l.startsWith("Missing "))
                        .collect(java.util.stream.Collectors.joining("; "));
                int nl = d.lastIndexOf('\n');
                sb.append(": ").append(!missing.isEmpty() ? missing : nl >= 0 ? d.substring(nl + 1) : d);
            }
            return sb.toString();
        }
    }

    /** Duration in nanoseconds of what flows into {@code element} (for an appsink: its stream), or -1 when unknown. */
    static long queryDuration(MemorySegment element) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(JAVA_LONG);
            int ok = (int) QUERY_DURATION.invokeExact(element, FORMAT_TIME, out);
            return ok != 0 ? out.get(JAVA_LONG, 0) : -1;
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** Next sample (owned), or NULL after {@code timeoutNanos}, at EOS or when flushing. */
    static MemorySegment tryPullSample(MemorySegment appsink, long timeoutNanos) {
        try { return (MemorySegment) APPSINK_TRY_PULL.invokeExact(appsink, timeoutNanos); } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * Pushes a copy of {@code data} into {@code appsrc} as one buffer (appsrc takes the buffer); returns the
     * GstFlowReturn (0: ok).
     */
    static int appsrcPush(MemorySegment appsrc, MemorySegment data) {
        try {
            MemorySegment buf = (MemorySegment) BUFFER_NEW_ALLOCATE.invokeExact(MemorySegment.NULL, data.byteSize(), MemorySegment.NULL);
            if (isNull(buf)) throw new IllegalStateException("cannot allocate a " + data.byteSize() + "-byte GStreamer buffer");
            long n = (long) BUFFER_FILL.invokeExact(buf, 0L, data, data.byteSize());
            if (n != data.byteSize()) {
                unrefMini(buf);
                throw new IllegalStateException("filled " + n + " of " + data.byteSize() + " bytes of a GStreamer buffer");
            }
            return (int) APPSRC_PUSH_BUFFER.invokeExact(appsrc, buf);
        } catch (Throwable t) { throw rethrow(t); }
    }

    static boolean appsinkIsEos(MemorySegment appsink) {
        try { return (int) APPSINK_IS_EOS.invokeExact(appsink) != 0; } catch (Throwable t) { throw rethrow(t); }
    }

    static MemorySegment sampleBuffer(MemorySegment sample) {
        try { return (MemorySegment) SAMPLE_GET_BUFFER.invokeExact(sample); } catch (Throwable t) { throw rethrow(t); }
    }

    static MemorySegment sampleCaps(MemorySegment sample) {
        try { return (MemorySegment) SAMPLE_GET_CAPS.invokeExact(sample); } catch (Throwable t) { throw rethrow(t); }
    }

    /** GstBuffer.pts: GstMiniObject (64 bytes), then pool, pts. -1 when GST_CLOCK_TIME_NONE. */
    static long bufferPts(MemorySegment buffer) {
        return buffer.reinterpret(80).get(JAVA_LONG, 72);
    }

    /** Maps {@code buffer} for reading into {@code mapInfo} (MAP_INFO_SIZE bytes); returns the data, or null. */
    static MemorySegment mapRead(MemorySegment buffer, MemorySegment mapInfo) {
        try {
            int ok = (int) BUFFER_MAP.invokeExact(buffer, mapInfo, MAP_READ);
            if (ok == 0) return null;
            MemorySegment info = mapInfo.reinterpret(MAP_INFO_SIZE);
            MemorySegment data = info.get(ADDRESS, 16);
            long size = info.get(JAVA_LONG, 24);
            return data.reinterpret(size);
        } catch (Throwable t) { throw rethrow(t); }
    }

    static void unmap(MemorySegment buffer, MemorySegment mapInfo) {
        try { BUFFER_UNMAP.invokeExact(buffer, mapInfo); } catch (Throwable t) { throw rethrow(t); }
    }

    static MemorySegment malloc0(long size) {
        try { return ((MemorySegment) G_MALLOC0.invokeExact(size)).reinterpret(size); } catch (Throwable t) { throw rethrow(t); }
    }

    static void free(MemorySegment p) {
        try { G_FREE.invokeExact(p); } catch (Throwable t) { throw rethrow(t); }
    }

    /**
     * Plane offsets and strides of {@code buffer} from its GstVideoMeta, or null when it has none. GstVideoMeta on
     * LP64: GstMeta (16), buffer (8), flags, format, id, width, height, n_planes (4 each), offset[4] (gsize), stride[4].
     */
    static long[][] videoMeta(MemorySegment buffer) {
        try {
            long api = videoMetaApi;
            if (api == 0) videoMetaApi = api = (long) VIDEO_META_API_TYPE.invokeExact();
            MemorySegment meta = (MemorySegment) BUFFER_GET_META.invokeExact(buffer, api);
            if (isNull(meta)) return null;
            MemorySegment m = meta.reinterpret(96);
            int planes = m.get(JAVA_INT, 44);
            long[] offsets = new long[planes], strides = new long[planes];
            for (int i = 0; i < planes && i < 4; i++) {
                offsets[i] = m.get(JAVA_LONG, 48 + 8L * i);
                strides[i] = m.get(JAVA_INT, 80 + 4L * i);
            }
            return new long[][] {offsets, strides};
        } catch (Throwable t) { throw rethrow(t); }
    }

    /** What a sample's caps say about the frame layout. */
    record CapsInfo(PixelFormat format, String formatName, int width, int height, long[] offsets, int[] strides,
                    long size, String colorimetry, int fpsN, int fpsD, String caps) {}

    /**
     * Reads format, size, colorimetry and the default plane layout of raw video caps. GstVideoInfo on LP64: finfo (8),
     * interlace_mode, flags, width, height (4 each), size (8), views, chroma_site, colorimetry (4 x 4), par_n, par_d,
     * fps_n, fps_d (4 each), offset[4] (8 each) at 72, stride[4] (4 each) at 104.
     */
    static CapsInfo capsInfo(MemorySegment caps) {
        try (Arena a = Arena.ofConfined()) {
            String capsString = cStringFree((MemorySegment) CAPS_TO_STRING.invokeExact(caps));
            MemorySegment s = (MemorySegment) CAPS_GET_STRUCTURE.invokeExact(caps, 0);
            String fmt = structString(s, "format", a);
            String colorimetry = structString(s, "colorimetry", a);
            MemorySegment num = a.allocate(JAVA_INT), den = a.allocate(JAVA_INT);
            int fpsN = 0, fpsD = 1;
            if ((int) STRUCTURE_GET_FRACTION.invokeExact(s, a.allocateFrom("framerate"), num, den) != 0) {
                fpsN = num.get(JAVA_INT, 0); fpsD = den.get(JAVA_INT, 0);
            }
            MemorySegment vi = (MemorySegment) VIDEO_INFO_NEW_FROM_CAPS.invokeExact(caps);
            if (isNull(vi)) throw new IllegalStateException("not raw video caps: " + capsString);
            try {
                MemorySegment v = vi.reinterpret(128);
                int width = v.get(JAVA_INT, 16), height = v.get(JAVA_INT, 20);
                long size = v.get(JAVA_LONG, 24);
                if (colorimetry == null) colorimetry = cStringFree((MemorySegment) VIDEO_COLORIMETRY_TO_STRING.invokeExact(v.asSlice(40)));
                PixelFormat pf = null;
                try { if (fmt != null) pf = PixelFormat.fromGstName(fmt); } catch (IllegalArgumentException ignored) { }
                int planes = pf == null ? 1 : pf.planeCount();
                long[] offsets = new long[planes];
                int[] strides = new int[planes];
                for (int i = 0; i < planes; i++) {
                    offsets[i] = v.get(JAVA_LONG, 72 + 8L * i);
                    strides[i] = v.get(JAVA_INT, 104 + 4L * i);
                }
                return new CapsInfo(pf, fmt, width, height, offsets, strides, size, colorimetry, fpsN, fpsD, capsString);
            } finally {
                VIDEO_INFO_FREE.invokeExact(vi);
            }
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) { throw rethrow(t); }
    }

    private static String structString(MemorySegment s, String field, Arena a) throws Throwable {
        MemorySegment v = (MemorySegment) STRUCTURE_GET_STRING.invokeExact(s, a.allocateFrom(field));
        return isNull(v) ? null : cString(v);
    }

    static String objectName(MemorySegment obj) {
        if (isNull(obj)) return null;
        try { return cStringFree((MemorySegment) OBJECT_GET_NAME.invokeExact(obj)); } catch (Throwable t) { throw rethrow(t); }
    }

    private static String gerrorMessage(MemorySegment gerror) {
        MemorySegment msg = gerror.reinterpret(16).get(ADDRESS, 8);
        return isNull(msg) ? "unknown error" : cString(msg);
    }

    static String cString(MemorySegment p) { return p.reinterpret(Long.MAX_VALUE).getString(0); }

    private static String cStringFree(MemorySegment p) throws Throwable {
        if (isNull(p)) return null;
        try { return cString(p); } finally { G_FREE.invokeExact(p); }
    }

    static boolean isNull(MemorySegment p) { return p == null || p.address() == 0; }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }
}
