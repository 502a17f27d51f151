package io.vlmflux.demos.bench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Writes a loadable checkpoint folder ({@code config.json} in the flat hub layout + one bf16 {@code model.safetensors})
 * with random weights of a named text-model shape, for {@code vlmflux bench llm}. Linear weights ~N(0, 0.02) (like HF
 * init), norms 1, biases ~N(0, 0.01); deterministic per seed. The safetensors file is written here (8-byte header
 * length, JSON header, raw little-endian data), streaming, so multi-GB shapes need no heap.
 */
final class RandomCheckpoint {
    private RandomCheckpoint() {}

    /** A Qwen2/Qwen3-style text model shape ({@code qkNorm}: Qwen3's per-head q/k RMSNorm, model type qwen3). */
    record Shape(String name, int hidden, int layers, int heads, int kvHeads, int headDim, int intermediate, int vocab,
                 boolean tied, boolean qkvBias, boolean qkNorm, int maxPositions) {
        static final List<Shape> ALL = List.of(
                new Shape("qwen2.5-0.5b", 896, 24, 14, 2, 64, 4864, 151936, true, true, false, 32768),
                new Shape("qwen2.5-1.5b", 1536, 28, 12, 2, 128, 8960, 151936, true, true, false, 32768),
                new Shape("qwen2.5-3b", 2048, 36, 16, 2, 128, 11008, 151936, true, true, false, 32768),
                new Shape("qwen2.5-7b", 3584, 28, 28, 4, 128, 18944, 152064, false, true, false, 32768),
                new Shape("qwen3-0.6b", 1024, 28, 16, 8, 128, 3072, 151936, true, false, true, 40960),
                new Shape("qwen3-1.7b", 2048, 28, 16, 8, 128, 6144, 151936, true, false, true, 40960),
                new Shape("tiny", 64, 2, 4, 2, 16, 128, 512, true, true, false, 2048));

        static Shape named(String n) {
            for (Shape s : ALL) if (s.name.equals(n)) return s;
            throw new IllegalArgumentException("unknown shape '" + n + "' (have: " + String.join(", ", ALL.stream().map(Shape::name).toList()) + ")");
        }
    }

    /** One tensor to write: name, shape and how its values are drawn. */
    private record Tensor(String name, long[] shape, double std, float constant) {
        long numel() {
            long n = 1;
            for (long d : shape) n = Math.multiplyExact(n, d);
            return n;
        }
    }

    static void write(Path dir, Shape s, long seed) throws IOException {
        Files.createDirectories(dir);
        String config = """
                {"architectures":["%s"],"model_type":"%s","hidden_size":%d,"num_hidden_layers":%d,
                 "num_attention_heads":%d,"num_key_value_heads":%d,"head_dim":%d,"intermediate_size":%d,"vocab_size":%d,
                 "tie_word_embeddings":%b,"attention_bias":%b,"max_position_embeddings":%d,"rms_norm_eps":1e-6,
                 "rope_theta":1000000.0,"hidden_act":"silu","bos_token_id":0,"eos_token_id":1,"torch_dtype":"bfloat16"}
                """.formatted(s.qkNorm ? "Qwen3ForCausalLM" : "Qwen2ForCausalLM", s.qkNorm ? "qwen3" : "qwen2", s.hidden, s.layers,
                s.heads, s.kvHeads, s.headDim, s.intermediate, s.vocab, s.tied, s.qkvBias, s.maxPositions);
        Files.writeString(dir.resolve("config.json"), config);

        long h = s.hidden, q = (long) s.heads * s.headDim, kv = (long) s.kvHeads * s.headDim, f = s.intermediate;
        List<Tensor> ts = new ArrayList<>();
        ts.add(new Tensor("model.embed_tokens.weight", new long[]{s.vocab, h}, 0.02, 0));
        for (int i = 0; i < s.layers; i++) {
            String p = "model.layers." + i + ".";
            ts.add(new Tensor(p + "input_layernorm.weight", new long[]{h}, 0, 1));
            ts.add(new Tensor(p + "self_attn.q_proj.weight", new long[]{q, h}, 0.02, 0));
            ts.add(new Tensor(p + "self_attn.k_proj.weight", new long[]{kv, h}, 0.02, 0));
            ts.add(new Tensor(p + "self_attn.v_proj.weight", new long[]{kv, h}, 0.02, 0));
            if (s.qkvBias) {
                ts.add(new Tensor(p + "self_attn.q_proj.bias", new long[]{q}, 0.01, 0));
                ts.add(new Tensor(p + "self_attn.k_proj.bias", new long[]{kv}, 0.01, 0));
                ts.add(new Tensor(p + "self_attn.v_proj.bias", new long[]{kv}, 0.01, 0));
            }
            if (s.qkNorm) {
                ts.add(new Tensor(p + "self_attn.q_norm.weight", new long[]{s.headDim}, 0, 1));
                ts.add(new Tensor(p + "self_attn.k_norm.weight", new long[]{s.headDim}, 0, 1));
            }
            ts.add(new Tensor(p + "self_attn.o_proj.weight", new long[]{h, q}, 0.02, 0));
            ts.add(new Tensor(p + "post_attention_layernorm.weight", new long[]{h}, 0, 1));
            ts.add(new Tensor(p + "mlp.gate_proj.weight", new long[]{f, h}, 0.02, 0));
            ts.add(new Tensor(p + "mlp.up_proj.weight", new long[]{f, h}, 0.02, 0));
            ts.add(new Tensor(p + "mlp.down_proj.weight", new long[]{h, f}, 0.02, 0));
        }
        ts.add(new Tensor("model.norm.weight", new long[]{h}, 0, 1));
        if (!s.tied) ts.add(new Tensor("lm_head.weight", new long[]{s.vocab, h}, 0.02, 0));
        writeSafetensors(dir.resolve("model.safetensors"), ts, seed);
    }

    private static void writeSafetensors(Path file, List<Tensor> ts, long seed) throws IOException {
        StringBuilder hdr = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        long off = 0;
        for (Tensor t : ts) {
            long end = off + 2 * t.numel();
            hdr.append(",\"").append(t.name).append("\":{\"dtype\":\"BF16\",\"shape\":[");
            for (int i = 0; i < t.shape.length; i++) hdr.append(i == 0 ? "" : ",").append(t.shape[i]);
            hdr.append("],\"data_offsets\":[").append(off).append(',').append(end).append("]}");
            off = end;
        }
        hdr.append('}');
        while ((hdr.length() + 8) % 8 != 0) hdr.append(' ');   // data starts 8-byte aligned
        byte[] json = hdr.toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        long counter = seed;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING, StandardOpenOption.WRITE)) {
            buf.putLong(json.length).put(json);
            for (Tensor t : ts) {
                SplittableRandom r = t.std > 0 ? new SplittableRandom(counter++ * 0x9E3779B97F4A7C15L) : null;
                for (long i = 0, n = t.numel(); i < n; i++) {
                    float v = r == null ? t.constant : (float) ((r.nextDouble() + r.nextDouble() + r.nextDouble() - 1.5) * 2 * t.std); // ~N(0, std) cheaply
                    if (buf.remaining() < 2) drain(ch, buf);
                    buf.putShort(bf16(v));
                }
            }
            drain(ch, buf);
        }
    }

    private static void drain(FileChannel ch, ByteBuffer buf) throws IOException {
        buf.flip();
        while (buf.hasRemaining()) ch.write(buf);
        buf.clear();
    }

    /** Round-to-nearest-even bf16 bits (the values here are finite). */
    static short bf16(float f) {
        int u = Float.floatToRawIntBits(f);
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }
}
