package io.vlmflux.llm.quant;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Writes a tiny 4-bit checkpoint in one format from known integer weights, and its oracle: the same model with every
 * packed linear dequantized ({@code (q - z) * s}, float32) as a plain 16-bit-style checkpoint the existing CPU
 * backend runs. Random q values, zero points (8 when symmetric), scales (rounded to what the format stores) and,
 * with act-order, a random input-row permutation whose groups follow GPTQ's rule {@code g_idx[perm[i]] = i / G}.
 * Qwen2 text shape, untied lm_head (16-bit, like the published checkpoints), q/k/v biases.
 */
public final class QuantFixture {
    public record Spec(QuantConfig quant, int hidden, int layers, int heads, int kvHeads, int headDim, int inter, int vocab, long seed) {
        public static Spec tiny(QuantConfig q, long seed) { return new Spec(q, 128, 2, 4, 2, 32, 384, 512, seed); }
    }

    private QuantFixture() {}

    /** Writes {@code quantDir} (packed) and {@code refDir} (dequantized, F32 linears). */
    public static void write(Spec s, Path quantDir, Path refDir) throws IOException {
        Files.createDirectories(quantDir);
        Files.createDirectories(refDir);
        String base = """
                {"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":%d,"num_hidden_layers":%d,
                 "num_attention_heads":%d,"num_key_value_heads":%d,"head_dim":%d,"intermediate_size":%d,"vocab_size":%d,
                 "tie_word_embeddings":false,"attention_bias":true,"max_position_embeddings":4096,"rms_norm_eps":1e-6,
                 "rope_theta":1000000.0,"hidden_act":"silu","bos_token_id":0,"eos_token_id":1,"torch_dtype":"float16"%s}
                """;
        String dims = base.formatted(s.hidden, s.layers, s.heads, s.kvHeads, s.headDim, s.inter, s.vocab, "%s");
        Files.writeString(refDir.resolve("config.json"), dims.formatted(""));
        Files.writeString(quantDir.resolve("config.json"), dims.formatted(",\n \"quantization_config\":" + configJson(s.quant)));
        SafetensorsWriter qw = new SafetensorsWriter().metadata("format", "pt"), rw = new SafetensorsWriter().metadata("format", "pt");
        SplittableRandom rnd = new SplittableRandom(s.seed);
        int h = s.hidden, q = s.heads * s.headDim, kv = s.kvHeads * s.headDim, f = s.inter;
        both(qw, rw, "model.embed_tokens.weight", new long[]{s.vocab, h}, normal(rnd, s.vocab * h, 0.5));
        for (int i = 0; i < s.layers; i++) {
            String p = "model.layers." + i + ".";
            both(qw, rw, p + "input_layernorm.weight", new long[]{h}, ones(h, rnd));
            both(qw, rw, p + "post_attention_layernorm.weight", new long[]{h}, ones(h, rnd));
            linear(s, rnd, qw, rw, p + "self_attn.q_proj", q, h);
            linear(s, rnd, qw, rw, p + "self_attn.k_proj", kv, h);
            linear(s, rnd, qw, rw, p + "self_attn.v_proj", kv, h);
            linear(s, rnd, qw, rw, p + "self_attn.o_proj", h, q);
            both(qw, rw, p + "self_attn.q_proj.bias", new long[]{q}, normal(rnd, q, 0.05));
            both(qw, rw, p + "self_attn.k_proj.bias", new long[]{kv}, normal(rnd, kv, 0.05));
            both(qw, rw, p + "self_attn.v_proj.bias", new long[]{kv}, normal(rnd, kv, 0.05));
            linear(s, rnd, qw, rw, p + "mlp.gate_proj", f, h);
            linear(s, rnd, qw, rw, p + "mlp.up_proj", f, h);
            linear(s, rnd, qw, rw, p + "mlp.down_proj", h, f);
        }
        both(qw, rw, "model.norm.weight", new long[]{h}, ones(h, rnd));
        both(qw, rw, "lm_head.weight", new long[]{s.vocab, h}, normal(rnd, s.vocab * h, 0.08));
        qw.write(quantDir.resolve("model.safetensors"));
        rw.write(refDir.resolve("model.safetensors"));
    }

    static String configJson(QuantConfig c) {
        return switch (c.method()) {
            case AWQ -> "{\"quant_method\":\"awq\",\"bits\":4,\"group_size\":" + c.groupSize() + ",\"version\":\"gemm\",\"zero_point\":true}";
            case GPTQ -> "{\"quant_method\":\"gptq\",\"bits\":4,\"group_size\":" + c.groupSize() + ",\"sym\":" + c.symmetric()
                    + ",\"desc_act\":" + c.descAct() + ",\"checkpoint_format\":\"" + (c.gptqZeroOffset() ? "gptq" : "gptq_v2") + "\"}";
            case COMPRESSED_TENSORS -> "{\"quant_method\":\"compressed-tensors\",\"format\":\"pack-quantized\",\"quantization_status\":\"compressed\","
                    + "\"config_groups\":{\"group_0\":{\"targets\":[\"Linear\"],\"input_activations\":null,\"output_activations\":null,"
                    + "\"weights\":{\"num_bits\":4,\"type\":\"int\",\"symmetric\":" + c.symmetric() + ",\"strategy\":\""
                    + (c.groupSize() == -1 ? "channel" : "group") + "\",\"group_size\":" + (c.groupSize() == -1 ? "null" : c.groupSize())
                    + ",\"dynamic\":false,\"actorder\":" + (c.descAct() ? "\"group\"" : "null") + "}}},\"ignore\":[\"lm_head\"]}";
        };
    }

    /** Random packed weights for one linear, in the format's own constraints. */
    static Int4Formats.Unpacked random(QuantConfig c, SplittableRandom rnd, int out, int in) {
        int gs = c.groupSizeFor(in), groups = (in + gs - 1) / gs;
        byte[] q = new byte[out * in];
        for (int i = 0; i < q.length; i++) q[i] = (byte) rnd.nextInt(16);
        float[] scales = new float[out * groups], zeros = new float[out * groups];
        boolean sym = c.method() != QuantConfig.Method.AWQ && c.symmetric();
        for (int i = 0; i < scales.length; i++) {
            scales[i] = (float) (0.02 * (0.5 + rnd.nextDouble()) / 8);
            zeros[i] = sym ? 8 : rnd.nextInt(16);
        }
        Int4Formats.roundScales(c.method(), scales);
        int[] colGroup = new int[in];
        if (c.descAct()) {
            int[] perm = new int[in];
            for (int i = 0; i < in; i++) perm[i] = i;
            for (int i = in - 1; i > 0; i--) { int j = rnd.nextInt(i + 1), t = perm[i]; perm[i] = perm[j]; perm[j] = t; }
            for (int i = 0; i < in; i++) colGroup[perm[i]] = i / gs;
        } else {
            for (int i = 0; i < in; i++) colGroup[i] = i / gs;
        }
        return new Int4Formats.Unpacked(out, in, q, colGroup, groups, scales, zeros);
    }

    private static void linear(Spec s, SplittableRandom rnd, SafetensorsWriter qw, SafetensorsWriter rw, String base, int out, int in) {
        Int4Formats.Unpacked u = random(s.quant, rnd, out, in);
        Int4Formats.write(qw, s.quant, base, u);
        rw.add(base + ".weight", DType.F32, new long[]{out, in}, u.dequantize());
    }

    private static void both(SafetensorsWriter a, SafetensorsWriter b, String name, long[] shape, float[] v) {
        a.add(name, DType.F16, shape, v);
        b.add(name, DType.F16, shape, v);
    }

    private static float[] normal(SplittableRandom r, int n, double std) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) ((r.nextDouble() + r.nextDouble() + r.nextDouble() - 1.5) * 2 * std);
        return v;
    }

    private static float[] ones(int n, SplittableRandom r) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (0.8 + 0.4 * r.nextDouble());
        return v;
    }
}
