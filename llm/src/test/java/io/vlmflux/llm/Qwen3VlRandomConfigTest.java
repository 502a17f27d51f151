package io.vlmflux.llm;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

import static io.vlmflux.llm.LogitRows.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * A second Qwen3-VL text config unlike the fixture: head_dim 20 with hidden 96 (6 heads, GQA 3:1), mrope_section
 * [4, 3, 3], 4 layers with 3 DeepStack features, untied lm_head, q/k/v/o bias, nested layout. It loads, stays finite,
 * and is self-consistent: a prompt prefilled in two chunks (text before the image, then the image and the rest) and
 * a decode step after it give the logits of one prefill of the whole sequence.
 */
class Qwen3VlRandomConfigTest {
    static final int H = 96, LAYERS = 4, HEADS = 6, KV = 2, HD = 20, FF = 144, VOCAB = 300, IMG = 290, MERGE = 2;
    @TempDir Path dir;

    @Test void secondConfigRunsFiniteAndChunkingAgrees() throws Exception {
        write(dir, 7);
        try (Decoder d = Models.load(dir, "cpu")) {
            assertEquals(HD, d.config().headDim());
            int gh = 4, gw = 6, tokens = gh * gw / (MERGE * MERGE);
            SplittableRandom r = new SplittableRandom(3);
            float[] rows = new float[tokens * H];
            for (int i = 0; i < rows.length; i++) rows[i] = (float) r.nextGaussian() * 0.5f;
            List<float[]> ds = new ArrayList<>();
            for (int k = 0; k < 3; k++) {
                float[] f = new float[tokens * H];
                for (int i = 0; i < f.length; i++) f[i] = (float) r.nextGaussian() * 0.5f;
                ds.add(f);
            }
            int[] ids = new int[5 + tokens + 4];
            for (int i = 0; i < ids.length; i++) ids[i] = 10 + i;
            for (int i = 0; i < tokens; i++) ids[5 + i] = IMG;
            EmbeddingSpan span = new EmbeddingSpan(5, tokens, H, new SpanRows.Host(rows), 1, gh, gw, 42L, 0, ds);
            MultimodalPrompt p = new MultimodalPrompt(ids, List.of(span));
            MropePositions mp = MropePositions.compute(p, d.config());
            int V = VOCAB, next = 77;

            float[] oneShot;   // the whole sequence + one more token in one prefill
            int[] ext = Arrays.copyOf(ids, ids.length + 1);
            ext[ids.length] = next;
            MropePositions mpe = MropePositions.compute(new MultimodalPrompt(ext, List.of(span)), d.config());
            try (KvCache c = d.newCache(64)) {
                oneShot = d.forward(c, new ForwardInput(ext, List.of(span), mpe.positions()), true);
            }
            for (float v : oneShot) assertTrue(Float.isFinite(v), "finite logits");

            try (KvCache c = d.newCache(64)) {   // two chunks, then a decode step at position p + delta
                d.forward(c, new ForwardInput(Arrays.copyOf(ids, 5), List.of(), slice(mp.positions(), 0, 5)), false);
                float[] last = d.forward(c, new ForwardInput(Arrays.copyOfRange(ids, 5, ids.length), List.of(span.at(0)),
                        slice(mp.positions(), 5, ids.length)), false);
                c.positionDelta(mp.delta());
                float tol = 1e-4f * Math.max(1f, maxAbs(last, 0, V));
                assertTrue(maxDiff(last, 0, oneShot, (ids.length - 1) * V, V) < tol, "chunked prefill diff " + maxDiff(last, 0, oneShot, (ids.length - 1) * V, V));
                float[] step = d.forward(c, ForwardInput.tokens(next), false);
                assertTrue(maxDiff(step, 0, oneShot, ids.length * V, V) < tol, "decode step diff " + maxDiff(step, 0, oneShot, ids.length * V, V));
            }
        }
    }

    private static int[][] slice(int[][] pos, int from, int to) {
        int[][] o = new int[3][];
        for (int a = 0; a < 3; a++) o[a] = Arrays.copyOfRange(pos[a], from, to);
        return o;
    }

    static void write(Path dir, long seed) throws Exception {
        Files.writeString(dir.resolve("config.json"), """
                {"architectures":["Qwen3VLForConditionalGeneration"],"model_type":"qwen3_vl","image_token_id":%d,"video_token_id":%d,
                 "vision_start_token_id":%d,"vision_end_token_id":%d,"tie_word_embeddings":false,
                 "text_config":{"hidden_size":%d,"num_hidden_layers":%d,"num_attention_heads":%d,"num_key_value_heads":%d,"head_dim":%d,
                   "intermediate_size":%d,"vocab_size":%d,"attention_bias":true,"rms_norm_eps":1e-6,"max_position_embeddings":512,
                   "hidden_act":"silu","eos_token_id":2,"tie_word_embeddings":false,
                   "rope_parameters":{"rope_type":"default","rope_theta":1000000.0,"mrope_section":[4,3,3],"mrope_interleaved":true}},
                 "vision_config":{"spatial_merge_size":%d,"deepstack_visual_indexes":[0,1,2]}}
                """.formatted(IMG, IMG + 1, IMG + 2, IMG + 3, H, LAYERS, HEADS, KV, HD, FF, VOCAB, MERGE));
        SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
        long[] ctr = {seed};
        long q = (long) HEADS * HD, kv = (long) KV * HD;
        String pre = "model.language_model.";
        w.add(pre + "embed_tokens.weight", DType.BF16, new long[] {VOCAB, H}, normal(ctr, 0.5));
        for (int i = 0; i < LAYERS; i++) {
            String p = pre + "layers." + i + ".";
            w.add(p + "input_layernorm.weight", DType.BF16, new long[] {H}, x -> 1f);
            w.add(p + "post_attention_layernorm.weight", DType.BF16, new long[] {H}, x -> 1f);
            w.add(p + "self_attn.q_proj.weight", DType.BF16, new long[] {q, H}, normal(ctr, 0.1));
            w.add(p + "self_attn.k_proj.weight", DType.BF16, new long[] {kv, H}, normal(ctr, 0.1));
            w.add(p + "self_attn.v_proj.weight", DType.BF16, new long[] {kv, H}, normal(ctr, 0.1));
            w.add(p + "self_attn.o_proj.weight", DType.BF16, new long[] {H, q}, normal(ctr, 0.1));
            w.add(p + "self_attn.q_proj.bias", DType.BF16, new long[] {q}, normal(ctr, 0.02));
            w.add(p + "self_attn.k_proj.bias", DType.BF16, new long[] {kv}, normal(ctr, 0.02));
            w.add(p + "self_attn.v_proj.bias", DType.BF16, new long[] {kv}, normal(ctr, 0.02));
            w.add(p + "self_attn.o_proj.bias", DType.BF16, new long[] {H}, normal(ctr, 0.02));
            w.add(p + "self_attn.q_norm.weight", DType.BF16, new long[] {HD}, x -> 1f);
            w.add(p + "self_attn.k_norm.weight", DType.BF16, new long[] {HD}, x -> 1f);
            w.add(p + "mlp.gate_proj.weight", DType.BF16, new long[] {FF, H}, normal(ctr, 0.1));
            w.add(p + "mlp.up_proj.weight", DType.BF16, new long[] {FF, H}, normal(ctr, 0.1));
            w.add(p + "mlp.down_proj.weight", DType.BF16, new long[] {H, FF}, normal(ctr, 0.1));
        }
        w.add(pre + "norm.weight", DType.BF16, new long[] {H}, x -> 1f);
        w.add("lm_head.weight", DType.BF16, new long[] {VOCAB, H}, normal(ctr, 0.1));
        w.add("model.visual.patch_embed.proj.weight", DType.BF16, new long[] {4, 4}, normal(ctr, 0.1));   // skipped by the text model
        w.write(dir.resolve("model.safetensors"));
    }

    private static SafetensorsWriter.Values normal(long[] counter, double std) {
        SplittableRandom r = new SplittableRandom(counter[0]++ * 0x9E3779B97F4A7C15L);
        return i -> (float) (r.nextGaussian() * std);
    }
}
