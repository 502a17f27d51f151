package io.vlmflux.cuda.gpu;

import java.util.Arrays;
import java.util.Random;

/**
 * Kernel timings on the current GPU (CUDA events, median of repeats, rotating weight copies so the 50 MB L2 does
 * not serve repeats): device copy bandwidth, bf16 GEMV vs cuBLAS at batch 1 on decoder shapes, decode attention,
 * sampling. Prints a Markdown table to stdout. Test scope (not in the library jar); the GPU bundle carries the test
 * classes: run-on-gpu.sh java io.vlmflux.cuda.gpu.KernelBench [gemm | gemv | bandwidth]
 */
public final class KernelBench {
    private KernelBench() {}

    /** Split-K vs unsplit GEMV (and the RMSNorm-fused form) on the small-m decode shapes (3B, 0.6B): "KernelBench gemv". */
    private static void gemvSplitK(GpuStream st, DeviceArena ar, GpuOps ops) {
        Random r = new Random(1);
        int[][] shapes = {{2560, 2048}, {2048, 2048}, {2048, 11008}, {4096, 1024}, {1024, 2048}, {1024, 3072}, {6144, 1024}, {22016, 2048}};
        for (int[] s : shapes) {
            int m = s[0], k = s[1];
            long wb = 2L * m * k;
            int copies = (int) Math.max(1, Math.min(8, (400L << 20) / wb + 1));
            long mk = ar.mark();
            DeviceBuffer[] w = new DeviceBuffer[copies];
            for (int c = 0; c < copies; c++) { w[c] = ar.alloc("w" + c, wb); fillBf16(st, w[c], m * (long) k, r); }
            DeviceBuffer x = ar.alloc("x", 2L * k), xf = ar.alloc("xf", 4L * k), nw = ar.alloc("nw", 2L * k), y = ar.alloc("y", 4L * m);
            fillBf16(st, x, k, r);
            fillBf16(st, nw, k, r);
            st.memsetAsync(xf, 0, 4L * k);
            int[] i = {0};
            int auto = ops.gemvSplitCount(m, k, -1);
            for (int splits : new int[] {0, -1, 2, 4, 8}) {
                int n = ops.gemvSplitCount(m, k, splits);
                if (splits > 0 && (n < 2 || n == auto)) continue;
                String tag = splits == 0 ? "unsplit" : splits < 0 ? "auto (" + n + " splits)" : n + " splits";
                row("gemv " + tag, m + "x" + k, med(st, 30, () -> ops.gemv(y, w[i[0]++ % copies], x, null, y, m, k, splits)), wb);
                row("gemvRmsNorm " + tag, m + "x" + k, med(st, 30, () -> ops.gemvRmsNorm(y, w[i[0]++ % copies], xf, nw, 1e-6f, null, y, m, k, splits)), wb);
            }
            ar.reset(mk);
        }
    }

    /**
     * cuBLAS's own algorithm against the tuned cuBLASLt one ({@code vlmflux.cuda.gemmTune}) on the products of the
     * Qwen2.5-VL-3B tower at 448x448 (1,024 patches), a Qwen2.5-3B / -7B prefill of 455 (a 640x480 frame and a question)
     * and 2,048 tokens: "KernelBench gemm". Each tuned product is timed after the call that tuned it; the table
     * gives both medians and the ratio, then the tuning report (the candidate chosen and the heuristic's first).
     */
    private static void gemmTuned(GpuStream st, DeviceArena ar) {
        Random r = new Random(2);
        // {rows, out features, in features, bf16 output, residual accumulate + bias}
        int[][] shapes = {
                {1024, 3840, 1280, 1, 0}, {1024, 1280, 1280, 0, 1}, {1024, 6912, 1280, 1, 0}, {1024, 1280, 3456, 0, 1},   // tower
                {455, 2560, 2048, 0, 0}, {455, 2048, 2048, 0, 1}, {455, 22016, 2048, 1, 0}, {455, 2048, 11008, 0, 1},     // 3B prefill
                {2048, 2560, 2048, 0, 0}, {2048, 2048, 2048, 0, 1}, {2048, 22016, 2048, 1, 0}, {2048, 2048, 11008, 0, 1},
                {455, 4608, 3584, 0, 0}, {455, 3584, 3584, 0, 1}, {455, 37888, 3584, 1, 0}, {455, 3584, 18944, 0, 1}};     // 7B prefill
        try (Blas plain = new Blas(st, ar.alloc("ws plain", 32 << 20)); Blas tuned = new Blas(st, ar.alloc("ws tuned", 32 << 20), true)) {
            System.out.println("| product (rows x out x in) | output | cuBLAS µs | tuned cuBLASLt µs | cuBLAS / tuned | tuned TFLOP/s |");
            System.out.println("|---|---|---|---|---|---|");
            for (int[] s : shapes) {
                int n = s[0], m = s[1], k = s[2];
                boolean bf16 = s[3] == 1, acc = s[4] == 1;
                long mk = ar.mark();
                DeviceBuffer w = ar.alloc("w", 2L * m * k), x = ar.alloc("x", 2L * n * k), y = ar.alloc("y", (bf16 ? 2L : 4L) * n * m);
                DeviceBuffer bias = ar.alloc("bias", 4L * m);
                fillBf16(st, w, (long) m * k, r);
                fillBf16(st, x, (long) n * k, r);
                st.memsetAsync(y, 0, (bf16 ? 2L : 4L) * n * m);
                st.memsetAsync(bias, 0, 4L * m);
                Runnable a = bf16 ? () -> plain.matmulNTbf16(y, x, w, n, m, k) : () -> plain.matmulNT(y, x, w, n, m, k, acc);
                Runnable t = bf16 ? () -> tuned.matmulNTbf16(y, x, w, n, m, k)
                        : acc ? () -> { if (!tuned.matmulNTBias(y, x, w, bias, n, m, k, true)) throw new IllegalStateException("not tuned"); }
                        : () -> tuned.matmulNT(y, x, w, n, m, k, false);
                t.run();   // tunes
                float ta = med(st, 20, a), tt = med(st, 20, t);
                System.out.printf(java.util.Locale.ROOT, "| %d x %d x %d | %s | %.1f | %.1f | %.2f | %.0f |%n", n, m, k,
                        (bf16 ? "bf16" : acc ? "fp32 += , bias in the epilogue" : "fp32"), ta * 1000, tt * 1000, ta / tt,
                        2.0 * n * m * k / (tt * 1e-3) / 1e12);
                ar.reset(mk);
            }
        }
        System.out.println();
        for (String line : Blas.tuningReport()) System.out.println("- " + line);
    }

    /**
     * {@code KernelBench} (all rows), {@code KernelBench gemm} (cuBLAS vs tuned cuBLASLt products), {@code KernelBench gemv} (split-K GEMV rows), {@code KernelBench bandwidth} (only
     * the device copy bandwidth in GB/s, read + write, as one number: what {@code vlmflux bench llm --bandwidth-gbps}
     * takes for its roofline).
     */
    public static void main(String[] args) {
        GpuDevice dev = Gpu.device();
        if (args.length > 0 && args[0].equals("bandwidth")) {
            long cb = 1L << 30;
            try (GpuStream st = dev.newStream(); DeviceArena ar = dev.newArena("bandwidth", 2 * cb + 512)) {
                DeviceBuffer a = ar.alloc("a", cb), b = ar.alloc("b", cb);
                st.memsetAsync(a, 1, cb);
                for (int i = 0; i < 3; i++) st.copyAsync(b, a, cb);
                float ms = med(st, 10, () -> st.copyAsync(b, a, cb));
                System.out.printf(java.util.Locale.ROOT, "%.1f%n", 2.0 * cb / (ms * 1e-3) / 1e9);
            }
            return;
        }
        try (GpuStream st = dev.newStream(); DeviceArena ar = dev.newArena("bench", 24L << 30);
             GpuOps ops = new GpuOps(st); GpuOps pipelined = new GpuOps(st, io.vlmflux.cuda.Tuning.fromSystemProperties().withPrefillPipelined(true));
             Blas blas = new Blas(st, ar.alloc("ws", 32 << 20))) {
            System.out.println("# " + dev + ", kernels: " + ops.kernelOrigin());
            System.out.println("| op | shape | median µs | GB/s (bytes moved / time) |");
            System.out.println("|---|---|---|---|");
            if (args.length > 0 && args[0].equals("gemv")) {
                gemvSplitK(st, ar, ops);
                return;
            }
            if (args.length > 0 && args[0].equals("gemm")) {
                gemmTuned(st, ar);
                return;
            }
            long cb = 1L << 30;
            DeviceBuffer a = ar.alloc("a", cb), b = ar.alloc("b", cb);
            st.memsetAsync(a, 1, cb);
            row("D2D copy", "1 GiB", med(st, 10, () -> st.copyAsync(b, a, cb)), 2.0 * cb);
            Random r = new Random(1);
            int[][] shapes = {{2048 * 2, 1024}, {1024, 3072}, {151936, 1024}, {4608, 3584}, {18944 * 2, 3584},
                    {3584, 18944}, {152064, 3584}, {11008 * 2, 2048}};
            for (int[] s : shapes) {
                int m = s[0], k = s[1];
                long wb = 2L * m * k;
                int copies = (int) Math.max(1, Math.min(8, (400L << 20) / wb + 1));
                DeviceBuffer[] w = new DeviceBuffer[copies];
                long mk = ar.mark();
                for (int c = 0; c < copies; c++) { w[c] = ar.alloc("w" + c, wb); fillBf16(st, w[c], m * (long) k, r); }
                DeviceBuffer x = ar.alloc("x", 2L * k), y = ar.alloc("y", 4L * m);
                fillBf16(st, x, k, r);
                int[] i = {0};
                float g = med(st, 30, () -> ops.gemv(y, w[i[0]++ % copies], x, null, null, m, k));
                float c = med(st, 30, () -> blas.matmulNT(y, x, w[i[0]++ % copies], 1, m, k, false));
                row("gemv bf16 (ours)", m + "x" + k, g, wb);
                row("cuBLAS GemmEx n=1", m + "x" + k, c, wb);
                ar.reset(mk);
            }
            for (int len : new int[] {512, 2048, 8192, 32768}) {
                for (int[] h : new int[][] {{16, 8, 128}, {28, 4, 128}}) {
                    GpuOps.AttnShape s = new GpuOps.AttnShape(h[0], h[1], h[2], len);
                    long mk = ar.mark();
                    DeviceBuffer kc = ar.alloc("k", s.cacheBytes()), vc = ar.alloc("v", s.cacheBytes());
                    fillBf16(st, kc, s.cacheBytes() / 2, r);
                    fillBf16(st, vc, s.cacheBytes() / 2, r);
                    DeviceBuffer q = ar.alloc("q", 4L * h[0] * h[2]), o = ar.alloc("o", 2L * h[0] * h[2]);
                    st.memsetAsync(q, 0, 4L * h[0] * h[2]);
                    DeviceBuffer len1 = ar.alloc("len", 4);
                    st.upload(len1, new int[] {len});
                    int splits = ops.decodeSplits(s);
                    DeviceBuffer ws = ar.alloc("ws", GpuOps.decodeWorkspaceBytes(s, splits));
                    float t = med(st, 30, () -> ops.attentionDecode(o, q, kc, vc, len1, s, splits, ws, 0.088f));
                    row("attention decode (splits " + splits + ")", "nq" + h[0] + " nkv" + h[1] + " hd" + h[2] + " len " + len, t, 2.0 * s.cacheBytes());
                    ar.reset(mk);
                }
            }
            for (int n : new int[] {512, 2048}) {
                GpuOps.AttnShape s = new GpuOps.AttnShape(16, 8, 128, n);
                long mk = ar.mark();
                PrefillBufs pb = PrefillBufs.of(ar, st, s, n, 0, r);
                float t = med(st, 10, () -> ops.attentionPrefill(pb.o(), pb.q(), pb.k(), pb.v(), pb.start(), n, s, 0.088f));
                float tp = med(st, 10, () -> pipelined.attentionPrefill(pb.o(), pb.q(), pb.k(), pb.v(), pb.start(), n, s, 0.088f));
                double flops = 4.0 * 16 * 128 * n * (double) n / 2;
                System.out.printf("| attention prefill | nq16 nkv8 hd128 n %d | %.1f | %.1f TFLOP/s | pipelined %.1f us, %.1f TFLOP/s |%n", n, t * 1000,
                        flops / (t * 1e-3) / 1e12, tp * 1000, flops / (tp * 1e-3) / 1e12);
                ar.reset(mk);
            }
            // few rows after a long cache (a live question / video group): one pass over the keys vs split keys
            for (int[] c : new int[][] {{20, 7700}, {256, 7700}, {391, 7700}, {20, 2048}}) {
                int n = c[0], len = c[1];
                GpuOps.AttnShape s = new GpuOps.AttnShape(16, 2, 128, len + n);
                long mk = ar.mark();
                PrefillBufs pb = PrefillBufs.of(ar, st, s, n, len, r);
                long wsb = GpuOps.prefillWorkspaceBytes(s, n, GpuOps.MAX_PREFILL_SPLITS);
                DeviceBuffer ws = ar.alloc("ws", wsb);
                int splits = ops.prefillSplits(s, n, len, wsb);
                float t1 = med(st, 10, () -> ops.attentionPrefill(pb.o(), pb.q(), pb.k(), pb.v(), pb.start(), n, s, 0.088f));
                float ts = med(st, 10, () -> ops.attentionPrefill(pb.o(), pb.q(), pb.k(), pb.v(), pb.start(), n, s, 0.088f, splits, ws));
                float tps = med(st, 10, () -> pipelined.attentionPrefill(pb.o(), pb.q(), pb.k(), pb.v(), pb.start(), n, s, 0.088f, splits, ws));
                System.out.printf("| attention prefill after a cache | nq16 nkv2 hd128 n %d after %d | one pass %.1f us | %d splits %.1f us | pipelined + splits %.1f us |%n",
                        n, len, t1 * 1000, splits, ts * 1000, tps * 1000);
                ar.reset(mk);
            }
            int vocab = 151936;
            DeviceBuffer logits = ar.alloc("logits", 4L * vocab), id = ar.alloc("id", 4), ctr = ar.alloc("ctr", 8);
            float[] l = new float[vocab];
            for (int j = 0; j < vocab; j++) l[j] = (float) r.nextGaussian() * 3;
            st.upload(logits, l);
            st.memsetAsync(ctr, 0, 8);
            row("argmax", "vocab " + vocab, med(st, 30, () -> ops.argmax(id, logits, vocab)), 4.0 * vocab);
            row("sample T=0.7 top-k 50 top-p 0.9", "vocab " + vocab, med(st, 30, () -> ops.sample(id, logits, vocab, 0.7f, 50, 0.9f, 1, ctr)), 4.0 * vocab);
            row("sample T=1 top-p 0.95", "vocab " + vocab, med(st, 30, () -> ops.sample(id, logits, vocab, 1f, 0, 0.95f, 1, ctr)), 4.0 * vocab);
            DeviceBuffer sws = ar.alloc("sampling workspace", GpuOps.sampleWorkspaceBytes(vocab)), aws = ar.alloc("argmax ws", GpuOps.argmaxWorkspaceBytes());
            row("argmax two-stage", "vocab " + vocab, med(st, 30, () -> ops.argmax(id, logits, vocab, aws)), 4.0 * vocab);
            row("sample multi-block T=0.7 k 40 p 0.9 min-p 0.05", "vocab " + vocab,
                    med(st, 30, () -> ops.sample(id, logits, vocab, 0.7f, 40, 0.9f, 0.05f, 1, ctr, sws)), 4.0 * vocab);
            row("sample multi-block T=0.7 top-k 50 top-p 0.9", "vocab " + vocab,
                    med(st, 30, () -> ops.sample(id, logits, vocab, 0.7f, 50, 0.9f, 0f, 1, ctr, sws)), 4.0 * vocab);
            row("sample multi-block T=1 top-p 0.95", "vocab " + vocab, med(st, 30, () -> ops.sample(id, logits, vocab, 1f, 0, 0.95f, 0f, 1, ctr, sws)), 4.0 * vocab);
            row("sample multi-block T=1 min-p 0.05", "vocab " + vocab, med(st, 30, () -> ops.sample(id, logits, vocab, 1f, 0, 1f, 0.05f, 1, ctr, sws)), 4.0 * vocab);
            row("sample multi-block T=1 (full vocabulary)", "vocab " + vocab, med(st, 30, () -> ops.sample(id, logits, vocab, 1f, 0, 1f, 0f, 1, ctr, sws)), 4.0 * vocab);
        }
    }

    /** An attention prefill's operands: random bf16 K/V caches of shape {@code s}, zero q for {@code n} rows, out, start. */
    private record PrefillBufs(DeviceBuffer k, DeviceBuffer v, DeviceBuffer q, DeviceBuffer o, DeviceBuffer start) {
        static PrefillBufs of(DeviceArena ar, GpuStream st, GpuOps.AttnShape s, int n, int start, Random r) {
            DeviceBuffer kc = ar.alloc("k", s.cacheBytes()), vc = ar.alloc("v", s.cacheBytes());
            fillBf16(st, kc, s.cacheBytes() / 2, r);
            fillBf16(st, vc, s.cacheBytes() / 2, r);
            long qBytes = 4L * n * s.nq() * s.headDim();
            DeviceBuffer q = ar.alloc("q", qBytes), o = ar.alloc("o", qBytes / 2), z = ar.alloc("start", 4);
            st.memsetAsync(q, 0, qBytes);
            st.upload(z, new int[] {start});
            return new PrefillBufs(kc, vc, q, o, z);
        }
    }

    private static void fillBf16(GpuStream st, DeviceBuffer b, long n, Random r) {
        int chunk = 1 << 22;
        short[] s = new short[chunk];
        for (int i = 0; i < chunk; i++) s[i] = bf16((float) r.nextGaussian() * 0.05f);
        for (long off = 0; off < n; off += chunk) {
            int len = (int) Math.min(chunk, n - off);
            st.upload(b.slice(2 * off, 2L * len, b.name()), len == chunk ? s : Arrays.copyOf(s, len));
        }
    }

    private static short bf16(float f) {
        int u = Float.floatToRawIntBits(f);
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    private static float med(GpuStream st, int reps, Runnable body) {
        for (int i = 0; i < 3; i++) body.run();
        st.synchronize();
        float[] t = new float[reps];
        for (int i = 0; i < reps; i++) t[i] = st.time(body);
        Arrays.sort(t);
        return t[reps / 2];
    }

    private static void row(String op, String shape, float ms, double bytes) {
        System.out.printf("| %s | %s | %.1f | %.0f |%n", op, shape, ms * 1000, bytes / (ms * 1e-3) / 1e9);
    }
}
