package io.vlmflux.llm;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

/**
 * Writes a loadable checkpoint folder ({@code config.json} in the flat hub layout + {@code model.safetensors}) with
 * random weights of a given shape, for tests: {@code RandomCheckpoint.write(dir, Shape.TINY, 1)}. ({@code vlmflux bench llm}
 * has its own writer, {@code io.vlmflux.demos.bench.RandomCheckpoint}, with more shapes.)
 * Linear weights are N(0, 0.02) (like HF init), norms 1, biases small. Deterministic per seed.
 */
public final class RandomCheckpoint {
    private RandomCheckpoint() {}

    /** A Qwen2-style text model shape. */
    public record Shape(String name, int hidden, int layers, int heads, int kvHeads, int headDim, int intermediate, int vocab,
                        boolean tied, boolean qkvBias, int maxPositions) {
        /** Qwen2.5-0.5B: hidden 896, 24 layers, 14/2 heads, head_dim 64, ffn 4864, vocab 151936, tied, qkv bias. */
        public static final Shape QWEN25_05B = new Shape("qwen2.5-0.5b", 896, 24, 14, 2, 64, 4864, 151936, true, true, 32768);
        /** A small shape for tests. */
        public static final Shape TINY = new Shape("tiny", 64, 2, 4, 2, 16, 128, 512, true, true, 2048);

        public static Shape named(String n) {
            return switch (n) {
                case "qwen2.5-0.5b" -> QWEN25_05B;
                case "tiny" -> TINY;
                default -> throw new IllegalArgumentException("unknown shape '" + n + "' (have: qwen2.5-0.5b, tiny)");
            };
        }
    }

    public static void write(Path dir, Shape s, long seed) throws IOException { write(dir, s, seed, DType.BF16); }

    public static void write(Path dir, Shape s, long seed, DType dtype) throws IOException {
        Files.createDirectories(dir);
        String config = """
                {"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","hidden_size":%d,"num_hidden_layers":%d,
                 "num_attention_heads":%d,"num_key_value_heads":%d,"head_dim":%d,"intermediate_size":%d,"vocab_size":%d,
                 "tie_word_embeddings":%b,"attention_bias":%b,"max_position_embeddings":%d,"rms_norm_eps":1e-6,
                 "rope_theta":1000000.0,"hidden_act":"silu","bos_token_id":0,"eos_token_id":1,"torch_dtype":"%s"}
                """.formatted(s.hidden, s.layers, s.heads, s.kvHeads, s.headDim, s.intermediate, s.vocab, s.tied, s.qkvBias,
                s.maxPositions, dtype == DType.F32 ? "float32" : dtype == DType.F16 ? "float16" : "bfloat16");
        Files.writeString(dir.resolve("config.json"), config);
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        long h = s.hidden, q = (long) s.heads * s.headDim, kv = (long) s.kvHeads * s.headDim, f = s.intermediate;
        long[] counter = {seed};
        w.add("model.embed_tokens.weight", dtype, new long[]{s.vocab, h}, normal(counter, 0.02));
        for (int i = 0; i < s.layers; i++) {
            String p = "model.layers." + i + ".";
            w.add(p + "input_layernorm.weight", dtype, new long[]{h}, x -> 1f);
            w.add(p + "self_attn.q_proj.weight", dtype, new long[]{q, h}, normal(counter, 0.02));
            w.add(p + "self_attn.k_proj.weight", dtype, new long[]{kv, h}, normal(counter, 0.02));
            w.add(p + "self_attn.v_proj.weight", dtype, new long[]{kv, h}, normal(counter, 0.02));
            if (s.qkvBias) {
                w.add(p + "self_attn.q_proj.bias", dtype, new long[]{q}, normal(counter, 0.01));
                w.add(p + "self_attn.k_proj.bias", dtype, new long[]{kv}, normal(counter, 0.01));
                w.add(p + "self_attn.v_proj.bias", dtype, new long[]{kv}, normal(counter, 0.01));
            }
            w.add(p + "self_attn.o_proj.weight", dtype, new long[]{h, q}, normal(counter, 0.02));
            w.add(p + "post_attention_layernorm.weight", dtype, new long[]{h}, x -> 1f);
            w.add(p + "mlp.gate_proj.weight", dtype, new long[]{f, h}, normal(counter, 0.02));
            w.add(p + "mlp.up_proj.weight", dtype, new long[]{f, h}, normal(counter, 0.02));
            w.add(p + "mlp.down_proj.weight", dtype, new long[]{h, f}, normal(counter, 0.02));
        }
        w.add("model.norm.weight", dtype, new long[]{h}, x -> 1f);
        if (!s.tied) w.add("lm_head.weight", dtype, new long[]{s.vocab, h}, normal(counter, 0.02));
        w.write(dir.resolve("model.safetensors"));
    }

    /** Sequential values from a per-tensor generator (the writer asks for indices in order). */
    private static SafetensorsWriter.Values normal(long[] counter, double std) {
        SplittableRandom r = new SplittableRandom(counter[0]++ * 0x9E3779B97F4A7C15L);
        return i -> (float) ((r.nextDouble() + r.nextDouble() + r.nextDouble() - 1.5) * 2 * std);   // ~N(0, std) cheaply
    }

}
