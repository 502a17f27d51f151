package io.vlmflux.sources;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** How a bus error reads: the text, the element, and the part of GStreamer's debug string a user can act on. */
class BusMessageTest {

    @Test
    void missingDecoderErrorNamesEveryMissingDecoderNotJustTheLastLine() {
        String debug = """
                ../gst/playback/gsturidecodebin.c(1049): no_more_pads_full (): /GstPipeline:pipeline0/GstURIDecodeBin:uridecodebin0:
                no suitable plugins found:
                ../gst/playback/gstdecodebin2.c(4704): gst_decode_bin_expose (): /GstPipeline:pipeline0/GstURIDecodeBin:uridecodebin0/GstDecodeBin:decodebin0:
                no suitable plugins found:
                Missing decoder: H.264 (High 4:4:4 Profile) (video/x-h264, profile=(string)high-4:4:4)
                Missing decoder: MPEG-1 Audio (audio/mpeg, mpegversion=(int)1)
                """;
        var m = new GstNative.BusMessage(GstNative.MSG_ERROR, "uridecodebin0", "Your GStreamer installation is missing a plug-in.", debug);
        assertEquals("Your GStreamer installation is missing a plug-in. (from uridecodebin0): "
                + "Missing decoder: H.264 (High 4:4:4 Profile) (video/x-h264, profile=(string)high-4:4:4); "
                + "Missing decoder: MPEG-1 Audio (audio/mpeg, mpegversion=(int)1)", m.describe());
    }

    @Test
    void otherErrorsKeepTheLastDebugLine() {
        var m = new GstNative.BusMessage(GstNative.MSG_ERROR, "filesrc0", "Resource not found.",
                "../plugins/elements/gstfilesrc.c(532): gst_file_src_start ():\nNo such file \"/nope.mp4\"");
        assertEquals("Resource not found. (from filesrc0): No such file \"/nope.mp4\"", m.describe());
        assertEquals("Resource not found.", new GstNative.BusMessage(GstNative.MSG_ERROR, null, "Resource not found.", " ").describe());
    }
}
