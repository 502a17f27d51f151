package io.vlmflux.llm.quant;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.Iterator;
import java.util.Map;

/**
 * The {@code quantization_config} of a Hugging Face {@code config.json} for the 4-bit weight-only (W4A16) formats
 * this project reads, see {@code docs/quantization.md}:
 * <ul>
 *   <li>{@code quant_method: awq} (AutoAWQ, {@code version: gemm}): {@code bits}, {@code group_size}, {@code zero_point};</li>
 *   <li>{@code quant_method: gptq} (AutoGPTQ / GPTQModel / optimum): {@code bits}, {@code group_size} (-1: one group),
 *   {@code sym}, {@code desc_act}, {@code checkpoint_format} ({@code gptq}: zero points stored minus one (v1),
 *   {@code gptq_v2}: stored as is);</li>
 *   <li>{@code quant_method: compressed-tensors} with {@code format: pack-quantized} (llm-compressor W4A16): the weights
 *   scheme of its {@code config_groups} ({@code num_bits}, {@code type: int}, {@code symmetric}, {@code strategy} group or
 *   channel, {@code group_size}), no activation quantization.</li>
 * </ul>
 * Anything else fails naming the field and what is supported, never silently loads as something else.
 *
 * @param groupSize input columns per group; -1: one group over all input columns (per-channel)
 * @param gptqZeroOffset GPTQ v1: the stored zero point is the real one minus one
 */
public record QuantConfig(Method method, int bits, int groupSize, boolean symmetric, boolean descAct, boolean gptqZeroOffset) {
    public enum Method {
        AWQ("awq"), GPTQ("gptq"), COMPRESSED_TENSORS("compressed-tensors");

        private final String wire;

        Method(String wire) { this.wire = wire; }

        public String wire() { return wire; }
    }

    public QuantConfig {
        if (bits != 4) throw new IllegalArgumentException("quantization_config: bits " + bits + " is not supported (only 4-bit weights)");
        if (groupSize != -1 && (groupSize <= 0 || groupSize % 8 != 0))
            throw new IllegalArgumentException("quantization_config: group_size " + groupSize + " is not supported (-1, or a positive multiple of 8)");
    }

    /** The group size for {@code cols} input columns (-1 becomes all of them). */
    public int groupSizeFor(int cols) { return groupSize == -1 ? cols : groupSize; }

    /** The {@code quantization_config} of a config root ({@code text_config} is checked too), or null when absent. */
    public static QuantConfig parse(JsonNode root) {
        JsonNode q = root.get("quantization_config");
        if ((q == null || q.isNull()) && root.path("text_config").isObject()) q = root.get("text_config").get("quantization_config");
        if (q == null || q.isNull()) return null;
        if (!q.isObject()) throw new IllegalArgumentException("field 'quantization_config' must be an object, got " + q);
        String method = text(q, "quant_method", null);
        if (method == null) throw new IllegalArgumentException("quantization_config: missing field 'quant_method' (supported: awq, gptq, compressed-tensors)");
        return switch (method) {
            case "awq" -> {
                String version = text(q, "version", "gemm");
                if (!version.equalsIgnoreCase("gemm"))
                    throw new IllegalArgumentException("quantization_config: AWQ version '" + version + "' is not supported (only the GEMM packing, version 'gemm')");
                if (q.has("zero_point") && !bool(q, "zero_point"))
                    throw new IllegalArgumentException("quantization_config: AWQ zero_point false is not supported (AutoAWQ GEMM checkpoints use zero points)");
                yield new QuantConfig(Method.AWQ, integer(q, "bits", "w_bit"), integer(q, "group_size", "q_group_size"), false, false, false);
            }
            case "gptq" -> {
                String fmt = text(q, "checkpoint_format", "gptq");
                boolean v1 = switch (fmt) {
                    case "gptq" -> true;
                    case "gptq_v2" -> false;
                    default -> throw new IllegalArgumentException("quantization_config: GPTQ checkpoint_format '" + fmt + "' is not supported (gptq, gptq_v2)");
                };
                boolean sym = !q.has("sym") || bool(q, "sym");
                boolean desc = q.has("desc_act") && bool(q, "desc_act");
                yield new QuantConfig(Method.GPTQ, integer(q, "bits", null), integer(q, "group_size", null), sym, desc, v1);
            }
            case "compressed-tensors" -> compressedTensors(q);
            default -> throw new IllegalArgumentException("quantization_config: quant_method '" + method
                    + "' is not supported (supported: awq, gptq, compressed-tensors pack-quantized)");
        };
    }

    private static QuantConfig compressedTensors(JsonNode q) {
        String format = text(q, "format", null);
        JsonNode groups = q.get("config_groups");
        if (groups == null || !groups.isObject() || groups.isEmpty())
            throw new IllegalArgumentException("quantization_config: compressed-tensors needs 'config_groups'");
        QuantConfig found = null;
        String foundName = null;
        for (Iterator<Map.Entry<String, JsonNode>> it = groups.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String where = "quantization_config.config_groups." + e.getKey();
            JsonNode g = e.getValue();
            String f = g.hasNonNull("format") ? text(g, "format", null) : format;
            if (!"pack-quantized".equals(f))
                throw new IllegalArgumentException(where + ": format '" + f + "' is not supported (only pack-quantized, W4A16)");
            JsonNode ia = g.get("input_activations");
            if (ia != null && !ia.isNull())
                throw new IllegalArgumentException(where + ".input_activations: activation quantization is not supported (weight-only W4A16)");
            JsonNode oa = g.get("output_activations");
            if (oa != null && !oa.isNull())
                throw new IllegalArgumentException(where + ".output_activations: activation quantization is not supported");
            JsonNode w = g.get("weights");
            if (w == null || !w.isObject()) throw new IllegalArgumentException(where + ": missing 'weights'");
            String type = text(w, "type", "int");
            if (!type.equals("int")) throw new IllegalArgumentException(where + ".weights.type '" + type + "' is not supported (int)");
            String strategy = text(w, "strategy", "group");
            int bits = integer(w, "num_bits", null);
            boolean sym = !w.has("symmetric") || bool(w, "symmetric");
            int gs = switch (strategy) {
                case "group" -> integer(w, "group_size", null);
                case "channel" -> -1;
                default -> throw new IllegalArgumentException(where + ".weights.strategy '" + strategy + "' is not supported (group, channel)");
            };
            if (w.hasNonNull("dynamic") && bool(w, "dynamic"))
                throw new IllegalArgumentException(where + ".weights.dynamic true is not supported");
            QuantConfig c;
            try {
                c = new QuantConfig(Method.COMPRESSED_TENSORS, bits, gs, sym, false, false);
            } catch (IllegalArgumentException ex) {
                throw new IllegalArgumentException(where + ".weights: " + ex.getMessage().replace("quantization_config: ", ""), ex);
            }
            if (found != null && !found.equals(c))
                throw new IllegalArgumentException(where + ": scheme " + c + " differs from " + foundName + " (" + found + "); mixed schemes are not supported");
            found = c;
            foundName = e.getKey();
        }
        return found;
    }

    private static String text(JsonNode n, String k, String dflt) {
        JsonNode v = n.get(k);
        if (v == null || v.isNull()) return dflt;
        if (!v.isTextual()) throw new IllegalArgumentException("quantization_config: field '" + k + "' must be a string, got " + v);
        return v.asText();
    }

    private static boolean bool(JsonNode n, String k) {
        JsonNode v = n.get(k);
        if (v == null || v.isNull()) return false;
        if (!v.isBoolean()) throw new IllegalArgumentException("quantization_config: field '" + k + "' must be true or false, got " + v);
        return v.asBoolean();
    }

    private static int integer(JsonNode n, String k, String alias) {
        JsonNode v = n.get(k);
        if ((v == null || v.isNull()) && alias != null) { v = n.get(alias); k = alias; }
        if (v == null || v.isNull()) throw new IllegalArgumentException("quantization_config: missing field '" + k + "'");
        if (!v.isIntegralNumber() || !v.canConvertToInt())
            throw new IllegalArgumentException("quantization_config: field '" + k + "' must be an integer, got " + v);
        return v.asInt();
    }
}
