package io.vlmflux.demos;

import java.util.Locale;
import java.util.Map;

/**
 * Readable names for a GStreamer colorimetry string: a named one ({@code bt709}, {@code sRGB}, ...) or the numeric
 * {@code range:matrix:transfer:primaries} form that caps carry for other combinations ({@code 1:3:5:1}). The codes
 * are those of GStreamer's {@code GstVideoColorRange}, {@code GstVideoColorMatrix}, {@code GstVideoTransferFunction}
 * and {@code GstVideoColorPrimaries}.
 */
final class ColorimetryNames {
    private static final String[] RANGE = {"unknown", "full", "limited"};
    private static final String[] MATRIX = {"unknown", "rgb", "fcc", "bt709", "bt601", "smpte240m", "bt2020"};
    private static final String[] TRANSFER = {"unknown", "gamma10", "gamma18", "gamma20", "gamma22", "bt709", "smpte240m", "srgb",
            "gamma28", "log100", "log316", "bt2020-12", "adobergb", "bt2020-10", "smpte2084 (pq)", "arib-std-b67 (hlg)", "bt601"};
    private static final String[] PRIMARIES = {"unknown", "bt709", "bt470m", "bt470bg", "smpte170m", "smpte240m", "film", "bt2020",
            "adobergb", "smptest428", "smpterp431", "smpteeg432", "ebu3213"};
    /** GStreamer's named colorimetries as codes. */
    private static final Map<String, String> NAMED = Map.of(
            "bt601", "2:4:16:4", "bt709", "2:3:5:1", "smpte240m", "2:5:6:5", "srgb", "1:1:7:1", "jpeg", "1:4:0:0",
            "bt2020", "2:6:11:7", "bt2020-10", "2:6:13:7", "bt2100-pq", "2:6:14:7", "bt2100-hlg", "2:6:15:7");

    private ColorimetryNames() {}

    /**
     * {@code limited range, matrix bt709, transfer bt709, primaries bt709}; the input itself when it is neither a
     * known name nor four codes; null for null. Unknown parts are left out.
     */
    static String describe(String colorimetry) {
        if (colorimetry == null) return null;
        String c = colorimetry.trim();
        String codes = NAMED.getOrDefault(c.toLowerCase(Locale.ROOT), c);
        String[] p = codes.split(":");
        if (p.length != 4) return colorimetry;
        int[] v = new int[4];
        try {
            for (int i = 0; i < 4; i++) v[i] = Integer.parseInt(p[i]);
        } catch (NumberFormatException e) {
            return colorimetry;
        }
        StringBuilder sb = new StringBuilder();
        part(sb, "", RANGE, v[0], " range");
        part(sb, "matrix ", MATRIX, v[1], "");
        part(sb, "transfer ", TRANSFER, v[2], "");
        part(sb, "primaries ", PRIMARIES, v[3], "");
        return sb.isEmpty() ? "unknown" : sb.toString();
    }

    private static void part(StringBuilder sb, String label, String[] names, int code, String suffix) {
        if (code == 0) return;
        if (!sb.isEmpty()) sb.append(", ");
        sb.append(label).append(code > 0 && code < names.length ? names[code] : "code " + code).append(suffix);
    }
}
