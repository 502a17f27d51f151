package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.cpu.CpuOps;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.ForwardInput;
import io.vlmflux.llm.KvCache;
import io.vlmflux.llm.Models;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

/**
 * Real-shape parity on the GPU machine against transformers (run by cuda-native/bundle/lm-gpu-run.sh after
 * peer_bench.py wrote DIR/hf_ids.i32 (prompt + decode ids) and DIR/hf_logits.f32 ([P + S, vocab] float32 logits that
 * transformers computed in float32 from the saved bf16 weights)): prefill the first P ids (all-position logits), then
 * S teacher-forced decode steps (graph replays); each row within 2e-2 x max|HF logit|, the same argmax where the HF
 * top-2 gap exceeds that. Prints one JSON line; exit status 1 on a mismatch.
 * Usage: HfParityCheck MODEL_DIR PROMPT_LEN
 */
public final class HfParityCheck {
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        int P = Integer.parseInt(args[1]);
        int[] ids = ints(dir.resolve("hf_ids.i32"));
        float[] hf = floats(dir.resolve("hf_logits.f32"));
        int S = ids.length - P;
        boolean ok = true;
        float worst = 0;
        int argmaxChecked = 0, argmaxSame = 0;
        String firstFail = null;
        try (Decoder d = Models.load(dir, "cuda"); KvCache cache = d.newCache(ids.length + 1)) {
            int V = d.config().vocabSize();
            if (hf.length != (long) ids.length * V) throw new IOException("hf_logits.f32 has " + hf.length + " floats, expected " + ids.length + " x " + V);
            float[] pre = d.forward(cache, ForwardInput.tokens(Arrays.copyOf(ids, P)), true);
            float[][] rows = new float[ids.length][];
            for (int t = 0; t < P; t++) rows[t] = Arrays.copyOfRange(pre, t * V, (t + 1) * V);
            for (int s = 0; s < S - 1; s++) rows[P + s] = d.forward(cache, ForwardInput.tokens(ids[P + s]), false);
            for (int t = 0; t < ids.length - 1; t++) {
                int off = t * V;
                float max = 0, diff = 0, a = Float.NEGATIVE_INFINITY, b = Float.NEGATIVE_INFINITY;
                for (int i = 0; i < V; i++) {
                    float g = hf[off + i];
                    max = Math.max(max, Math.abs(g));
                    diff = Math.max(diff, Math.abs(g - rows[t][i]));
                    if (g > a) { b = a; a = g; } else if (g > b) b = g;
                }
                float tol = 2e-2f * max;
                worst = Math.max(worst, diff / max);
                if (diff > tol) { ok = false; if (firstFail == null) firstFail = "row " + t + " diff " + diff + " > " + tol; }
                if (a - b > tol) {
                    argmaxChecked++;
                    if (CpuOps.argmax(hf, off, V) == CpuOps.argmax(rows[t], 0, V)) argmaxSame++;
                    else { ok = false; if (firstFail == null) firstFail = "row " + t + " argmax differs"; }
                }
            }
        }
        System.out.printf("{\"what\":\"parity\",\"model\":\"%s\",\"rows\":%d,\"worst_rel_err\":%.3e,\"tolerance\":0.02,\"argmax_checked\":%d,\"argmax_same\":%d,\"pass\":%s%s}%n",
                dir.getFileName(), ids.length - 1, worst, argmaxChecked, argmaxSame, ok, firstFail == null ? "" : ",\"first_fail\":\"" + firstFail + "\"");
        System.exit(ok ? 0 : 1);
    }

    static ByteBuffer map(Path p) throws IOException {
        try (FileChannel ch = FileChannel.open(p)) {
            return ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size()).order(ByteOrder.LITTLE_ENDIAN);
        }
    }

    static int[] ints(Path p) throws IOException {
        ByteBuffer b = map(p);
        int[] a = new int[b.remaining() / 4];
        b.asIntBuffer().get(a);
        return a;
    }

    static float[] floats(Path p) throws IOException {
        ByteBuffer b = map(p);
        float[] a = new float[b.remaining() / 4];
        b.asFloatBuffer().get(a);
        return a;
    }
}
