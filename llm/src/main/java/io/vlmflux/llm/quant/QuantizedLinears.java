package io.vlmflux.llm.quant;

import io.vlmflux.cuda.cpu.Int4Weights;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.TextModelSpec;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The decoder side of 4-bit checkpoints: which of a text model's linear weights are stored packed, their validation
 * against the config, and loading into {@link Int4Weights}. A linear is packed when its {@code .weight} is absent and
 * the format's packed tensor (e.g. {@code .qweight}) is present; layers the quantizer left alone (lm_head, embeddings,
 * norms, the vision tower) stay 16-bit and load as before.
 */
public final class QuantizedLinears {
    private QuantizedLinears() {}

    /**
     * Checks every packed linear of {@code expected} (presence, dtypes and shapes of its tensors against the config)
     * and returns the names it covers: the expected {@code .weight} names stored packed, and their packed tensors.
     * Empty for 16-bit checkpoints.
     */
    public static Set<String> validate(ModelConfig c, WeightStore store, Map<String, long[]> expected, TextModelSpec spec) {
        Set<String> covered = new HashSet<>();
        QuantConfig q = c.quantization();
        if (q == null) return covered;
        for (Map.Entry<String, long[]> e : expected.entrySet()) {
            String name = e.getKey();
            long[] shape = e.getValue();
            if (shape.length != 2 || !name.endsWith(".weight") || store.has(name) || name.equals(spec.prefix() + "embed_tokens.weight")) continue;
            String base = name.substring(0, name.length() - ".weight".length());
            if (!Int4Formats.present(store, q.method(), base)) continue;
            Int4Formats.check(store, q, base, Math.toIntExact(shape[0]), Math.toIntExact(shape[1]));
            covered.add(name);
            covered.addAll(Int4Formats.presentNames(store, q.method(), base));
        }
        return covered;
    }

    /** Reads packed linear {@code name} ({@code ...q_proj.weight}) of shape {@code [out, in]}. */
    public static Int4Weights load(ModelConfig c, WeightStore store, String name, long[] shape) {
        QuantConfig q = c.quantization();
        if (!name.endsWith(".weight")) throw new IllegalArgumentException("not a linear weight name: " + name);
        if (shape == null || shape.length != 2) throw new IllegalArgumentException(store.location() + ": no 2-D shape known for " + name);
        String base = name.substring(0, name.length() - ".weight".length());
        return Int4Formats.read(store, q, base, Math.toIntExact(shape[0]), Math.toIntExact(shape[1])).weights(name);
    }

    /**
     * Act-order permutations the cuda layout keeps for packed linears {@code names} ({@code ...q_proj.weight}, all of
     * {@code in} input columns) fused along the output rows, as {@code Int4Device.Layout.concat} does: 0 when none
     * reorders its input, else one per run of neighbours with equal group indices (an in-order one counts as a run of
     * its own). Reads only the group index tensors (arena planning).
     */
    public static int permParts(ModelConfig c, WeightStore store, int in, String... names) {
        int runs = 0;
        boolean any = false;
        int[] prev = null;
        for (int i = 0; i < names.length; i++) {
            String name = names[i];
            if (!name.endsWith(".weight")) throw new IllegalArgumentException("not a linear weight name: " + name);
            int[] g = Int4Formats.actOrderGroups(store, c.quantization(), name.substring(0, name.length() - ".weight".length()), in);
            any |= g != null;
            if (i == 0 || !java.util.Arrays.equals(prev, g)) runs++;
            prev = g;
        }
        return any ? runs : 0;
    }

    /**
     * A hint for a missing-tensors error: packed tensors present for a missing weight while config.json has no
     * {@code quantization_config}, or packed in another format than the config says. Empty when none applies.
     */
    public static String hint(ModelConfig c, WeightStore store, List<String> missing) {
        for (String name : missing) {
            if (!name.endsWith(".weight")) continue;
            String base = name.substring(0, name.length() - ".weight".length());
            for (QuantConfig.Method m : QuantConfig.Method.values())
                if (Int4Formats.present(store, m, base)) {
                    if (c.quantization() == null)
                        return " (" + base + " is stored packed, " + m.wire() + "-style, but config.json has no quantization_config)";
                    if (c.quantization().method() != m)
                        return " (" + base + " is stored packed " + m.wire() + "-style, but quantization_config.quant_method is "
                                + c.quantization().method().wire() + ")";
                }
        }
        return "";
    }
}
