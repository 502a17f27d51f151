package io.vlmflux.llm.quant;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import io.vlmflux.cuda.safetensors.TensorView;
import io.vlmflux.cuda.safetensors.WeightStore;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.TextModelSpec;
import io.vlmflux.llm.cpu.ActivationTap;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * {@code vlmflux quantize}: a 16-bit checkpoint folder to an AWQ-format (GEMM packing, {@code quant_method: awq}) folder
 * that this project and every AWQ-capable runtime read. The text decoder's seven linears per layer become 4-bit with
 * asymmetric per-group zero points (AutoAWQ's {@code pseudo_quantize_tensor} rule: {@code scale = (max - min) / 15},
 * {@code zero = clamp(-round(min / scale), 0, 15)}, {@code q = clamp(round(w / scale) + zero, 0, 15)}); embeddings,
 * lm_head, norms and the vision tower are copied as they are.
 *
 * <p>{@link Method#AWQ} first runs a calibration set through the 16-bit model on the CPU, records the mean magnitude of
 * each input channel of each linear group (q/k/v, o, gate/up, down) and, per group, searches {@code s = mean^alpha}
 * ({@code alpha} in 0, 0.05 .. 0.95, normalised) minimising the output error of the quantized, scaled weights on the
 * recorded rows; {@code 1/s} is folded into what feeds the group (the RMSNorm weight for q/k/v and gate/up, the rows of
 * up_proj for down_proj, the rows and bias of v_proj for o_proj when no GQA makes them differ) so the model's function is kept.
 * Differences from AutoAWQ (documented in docs/quantization.md): statistics come from one pass over the 16-bit model
 * (not layer by layer over the already-quantized prefix), there is no weight-clipping search, and calibration is text.
 */
public final class Quantizer {
    public enum Method { RTN, AWQ }

    /** @param calibration token sequences for {@link Method#AWQ} (ignored for RTN) */
    public record Options(int groupSize, Method method, List<int[]> calibration) {
        public Options {
            if (groupSize <= 0 || groupSize % 8 != 0) throw new IllegalArgumentException("--group-size must be a positive multiple of 8, got " + groupSize);
            calibration = calibration == null ? List.of() : List.copyOf(calibration);
            if (method == Method.AWQ && calibration.isEmpty()) throw new IllegalArgumentException("AWQ needs a calibration set");
        }
    }

    /** What was done: layers packed, those kept 16-bit and why, the alpha chosen per group (AWQ). */
    public record Report(int packed, List<String> kept, Map<String, Double> alphas, long bytesIn, long bytesOut) {}

    private static final String[] LINEARS = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    private static final int SAMPLE_ROWS = 64;
    private static final System.Logger LOG = System.getLogger("vlmflux.quant");

    private Quantizer() {}

    public static Report quantize(Path in, Path out, Options o) throws IOException {
        ModelConfig c = ModelConfig.load(in);
        if (c.quantization() != null)
            throw new IllegalArgumentException(in.resolve("config.json") + ": already quantized (" + c.quantization().method().wire() + ")");
        if (Files.exists(out) && !isEmptyDir(out)) throw new IllegalArgumentException(out + ": output folder exists and is not empty");
        Map<Integer, Map<String, Stats>> stats = o.method() == Method.AWQ ? calibrate(in, c, o.calibration()) : Map.of();
        QuantConfig awq = new QuantConfig(QuantConfig.Method.AWQ, 4, o.groupSize(), false, false, false);
        Files.createDirectories(out);
        List<String> kept = new ArrayList<>();
        Map<String, Double> alphas = new LinkedHashMap<>();
        int packed = 0;
        try (WeightStore store = WeightStore.read(in)) {
            TextModelSpec spec = Models.family(c).spec(c, store.names());
            spec.validate(c, store);
            Map<String, float[]> replaced = new HashMap<>();      // fp tensors changed by scale folding (norms)
            Map<String, Int4Formats.Unpacked> quant = new HashMap<>();
            for (int li = 0; li < c.numLayers(); li++) {
                Map<String, float[]> w = new HashMap<>();
                for (String l : LINEARS) w.put(l, store.tensor(spec.layer(li, l + ".weight")).toFloatArray());
                Map<String, Stats> st = stats.get(li);
                if (st != null) {
                    String an = spec.layer(li, "input_layernorm.weight"), mn = spec.layer(li, "post_attention_layernorm.weight");
                    float[] attnNorm = store.tensor(an).toFloatArray(), mlpNorm = store.tensor(mn).toFloatArray();
                    alphas.put(li + ".qkv", scaleGroup(st.get("qkv"), w, List.of("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
                            attnNorm, null, null, o.groupSize()));
                    alphas.put(li + ".gate_up", scaleGroup(st.get("gate_up"), w, List.of("mlp.gate_proj", "mlp.up_proj"), mlpNorm, null, null, o.groupSize()));
                    alphas.put(li + ".down", scaleGroup(st.get("down"), w, List.of("mlp.down_proj"), null, w.get("mlp.up_proj"), null, o.groupSize()));
                    if (c.qDim() == c.kvDim()) {   // o_proj's input channels are v_proj's rows only without GQA
                        String vb = spec.layer(li, "self_attn.v_proj.bias");
                        float[] vBias = store.has(vb) ? store.tensor(vb).toFloatArray() : null;
                        alphas.put(li + ".o", scaleGroup(st.get("o"), w, List.of("self_attn.o_proj"), null, w.get("self_attn.v_proj"), vBias, o.groupSize()));
                        if (vBias != null) replaced.put(vb, vBias);
                    }
                    replaced.put(an, attnNorm);
                    replaced.put(mn, mlpNorm);
                }
                for (String l : LINEARS) {
                    String name = spec.layer(li, l + ".weight");
                    long[] sh = store.tensor(name).shape();
                    int rows = (int) sh[0], cols = (int) sh[1];
                    if (rows % 8 != 0 || cols % o.groupSize() != 0) {
                        kept.add(name + " (" + rows + "x" + cols + ": AWQ needs out % 8 == 0 and in % group_size == 0)");
                        replaced.put(name, w.get(l));
                        continue;
                    }
                    quant.put(name, rtn(w.get(l), rows, cols, o.groupSize()));
                    packed++;
                }
            }
            SafetensorsWriter wr = new SafetensorsWriter().metadata("format", "pt");
            for (TensorView t : store.tensors().values()) {
                String n = t.name();
                Int4Formats.Unpacked u = quant.remove(n);   // its packed words replace it: peak ~1 byte per weight, not 2
                if (u != null) {
                    Int4Formats.write(wr, awq, n.substring(0, n.length() - ".weight".length()), u);
                } else if (replaced.containsKey(n)) {
                    wr.add(n, t.dtype(), t.shape(), replaced.get(n));
                } else if (t.dtype().isFloating()) {
                    wr.add(n, t.dtype(), t.shape(), t::get);
                } else {
                    long[] v = new long[Math.toIntExact(t.numel())];
                    for (int i = 0; i < v.length; i++) v[i] = t.getLong(i);
                    wr.addExact(n, t.dtype(), t.shape(), v);
                }
            }
            wr.write(out.resolve(WeightStore.SINGLE));
            copyOthers(in, out, o.groupSize(), c);
            return new Report(packed, kept, alphas, store.totalBytes(), Files.size(out.resolve(WeightStore.SINGLE)));
        }
    }

    /** AutoAWQ's asymmetric round-to-nearest per group of {@code gs} input columns; scales rounded to f16 first. */
    static Int4Formats.Unpacked rtn(float[] w, int rows, int cols, int gs) {
        int groups = cols / gs;
        byte[] q = new byte[rows * cols];
        float[] scales = new float[rows * groups], zeros = new float[rows * groups];
        int[] colGroup = new int[cols];
        for (int i = 0; i < cols; i++) colGroup[i] = i / gs;
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < groups; g++) {
                float max = Float.NEGATIVE_INFINITY, min = Float.POSITIVE_INFINITY;
                for (int i = g * gs; i < (g + 1) * gs; i++) { float v = w[r * cols + i]; max = Math.max(max, v); min = Math.min(min, v); }
                float s = DType.f16ToFloat(DType.floatToF16(Math.max(max - min, 1e-5f) / 15f));
                float z = Math.min(15, Math.max(0, -Math.round(min / s)));
                scales[r * groups + g] = s;
                zeros[r * groups + g] = z;
                for (int i = g * gs; i < (g + 1) * gs; i++)
                    q[r * cols + i] = (byte) Math.min(15, Math.max(0, Math.round(w[r * cols + i] / s) + (int) z));
            }
        return new Int4Formats.Unpacked(rows, cols, q, colGroup, groups, scales, zeros);
    }

    /** Mean |x| per channel and a sample of rows, for one linear input. */
    static final class Stats {
        final int width;
        final double[] absSum;
        long rows;
        final List<float[]> sample = new ArrayList<>();

        Stats(int width) { this.width = width; absSum = new double[width]; }

        synchronized void add(float[] x, int n) {
            for (int t = 0; t < n; t++) {
                for (int i = 0; i < width; i++) absSum[i] += Math.abs(x[t * width + i]);
                rows++;
                // keep every k-th row so the sample spans the whole calibration set
                if (sample.size() < SAMPLE_ROWS && (rows % 3 == 1 || rows < SAMPLE_ROWS / 2))
                    sample.add(java.util.Arrays.copyOfRange(x, t * width, (t + 1) * width));
            }
        }

        float[] mean() {
            float[] m = new float[width];
            for (int i = 0; i < width; i++) m[i] = (float) (absSum[i] / Math.max(1, rows));
            return m;
        }
    }

    private static Map<Integer, Map<String, Stats>> calibrate(Path in, ModelConfig c, List<int[]> seqs) throws IOException {
        Map<Integer, Map<String, Stats>> stats = new HashMap<>();
        try (Decoder d = Models.load(in, "cpu")) {
            ActivationTap.attach(d, (layer, point, x, n, width) ->
                    stats.computeIfAbsent(layer, k -> new HashMap<>()).computeIfAbsent(point, k -> new Stats(width)).add(x, n));
            for (int[] s : seqs) {
                int len = Math.min(s.length, Math.max(1, c.maxPositionEmbeddings()));
                if (len == 0) continue;
                d.forward(d.newCache(len), ForwardInput.tokens(java.util.Arrays.copyOf(s, len)), false);
            }
            ActivationTap.attach(d, null);
        }
        LOG.log(System.Logger.Level.INFO, "calibrated on {0} sequence(s), {1} token(s)", seqs.size(), seqs.stream().mapToInt(a -> a.length).sum());
        return stats;
    }

    /**
     * The AWQ scale search for the linears {@code names} sharing one input: picks alpha minimising
     * {@code sum ||W x - Q(W diag(s)) (x / s)||^2} over the sampled rows, then scales the weights by {@code s} in place
     * and folds {@code 1/s} into {@code norm} (elementwise) or into the rows of {@code prevRows} (the linear whose output
     * is this input). Returns the alpha.
     */
    static double scaleGroup(Stats st, Map<String, float[]> w, List<String> names, float[] norm, float[] prevRows, float[] prevBias, int gs) {
        int cols = st.width;
        for (String n : names) if (w.get(n).length % cols != 0 || cols % gs != 0) return Double.NaN;
        float[] mean = st.mean();
        double bestLoss = Double.POSITIVE_INFINITY, bestAlpha = 0;
        float[] best = null;
        for (int k = 0; k < 20; k++) {
            double alpha = k * 0.05;
            float[] s = scales(mean, alpha);
            double loss = 0;
            for (String n : names) loss += loss(w.get(n), cols, s, st.sample, gs);
            if (loss < bestLoss) { bestLoss = loss; bestAlpha = alpha; best = s; }
        }
        for (String n : names) {
            float[] m = w.get(n);
            for (int r = 0; r < m.length / cols; r++) for (int i = 0; i < cols; i++) m[r * cols + i] *= best[i];
        }
        if (norm != null) for (int i = 0; i < cols; i++) norm[i] /= best[i];
        if (prevRows != null) {
            int pc = prevRows.length / cols;
            for (int r = 0; r < cols; r++) for (int i = 0; i < pc; i++) prevRows[r * pc + i] /= best[r];
            if (prevBias != null) for (int r = 0; r < cols; r++) prevBias[r] /= best[r];
        }
        return bestAlpha;
    }

    private static float[] scales(float[] mean, double alpha) {
        float[] s = new float[mean.length];
        double max = 0, min = Double.POSITIVE_INFINITY;
        for (int i = 0; i < s.length; i++) {
            s[i] = (float) Math.max(1e-4, Math.pow(Math.max(mean[i], 1e-8), alpha));
            max = Math.max(max, s[i]);
            min = Math.min(min, s[i]);
        }
        float norm = (float) Math.sqrt(max * min);
        for (int i = 0; i < s.length; i++) s[i] /= norm;
        return s;
    }

    private static double loss(float[] w, int cols, float[] s, List<float[]> xs, int gs) {
        int rows = w.length / cols;
        float[] ws = new float[w.length];
        for (int r = 0; r < rows; r++) for (int i = 0; i < cols; i++) ws[r * cols + i] = w[r * cols + i] * s[i];
        float[] dq = rtn(ws, rows, cols, gs).dequantize();
        double loss = 0;
        for (float[] x : xs)
            for (int r = 0; r < rows; r++) {
                double a = 0, b = 0;
                for (int i = 0; i < cols; i++) {
                    a += (double) w[r * cols + i] * x[i];
                    b += (double) dq[r * cols + i] * (x[i] / s[i]);
                }
                loss += (a - b) * (a - b);
            }
        return loss;
    }

    private static boolean isEmptyDir(Path p) throws IOException {
        if (!Files.isDirectory(p)) return false;
        try (Stream<Path> s = Files.list(p)) { return s.findAny().isEmpty(); }
    }

    /** Copies tokenizer, processor and generation files; writes config.json with the AWQ quantization_config. */
    private static void copyOthers(Path in, Path out, int gs, ModelConfig c) throws IOException {
        try (Stream<Path> files = Files.list(in)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                String n = f.getFileName().toString();
                if (!Files.isRegularFile(f) || n.endsWith(".safetensors") || n.equals(WeightStore.INDEX) || n.equals("config.json")) continue;
                Files.copy(f, out.resolve(n), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        ObjectMapper m = new ObjectMapper();
        ObjectNode root = (ObjectNode) m.readTree(in.resolve("config.json").toFile());
        ObjectNode q = root.putObject("quantization_config");
        q.put("quant_method", "awq").put("bits", 4).put("group_size", gs).put("version", "gemm").put("zero_point", true);
        if (root.has("vision_config")) q.putArray("modules_to_not_convert").add("visual");
        m.writerWithDefaultPrettyPrinter().writeValue(out.resolve("config.json").toFile(), root);
    }
}
