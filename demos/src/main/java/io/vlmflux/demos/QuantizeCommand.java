package io.vlmflux.demos;

import io.vlmflux.llm.ModelConfig;
import io.vlmflux.llm.quant.Quantizer;
import io.vlmflux.llm.quant.TextSet;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Set;

/** {@code vlmflux quantize}: a 16-bit checkpoint folder to a 4-bit AWQ-format folder (docs/quantization.md). */
public final class QuantizeCommand implements Command {
    @Override public String summary() { return "write a 4-bit AWQ-format copy of a 16-bit model folder (RTN or activation-aware)"; }

    @Override public String usage() {
        return """
                vlmflux quantize --model DIR --out DIR [--group-size 128] [--method rtn|awq] [--calib FILE]
                                 [--calib-window 256] [--calib-windows 16]
                  --model DIR         16-bit Hugging Face folder (config.json, *.safetensors, tokenizer files)
                  --out DIR           new folder (must not exist or be empty): config.json with quantization_config
                                      (quant_method awq, GEMM packing), model.safetensors, the other files copied
                  --group-size N      input columns per scale/zero group (multiple of 8; default 128)
                  --method rtn|awq    round-to-nearest, or activation-aware scaling from a calibration pass (default awq)
                  --calib FILE        UTF-8 calibration text (default: a built-in sample); split into windows of
                                      --calib-window tokens, at most --calib-windows of them
                The text decoder's linears become 4-bit; embeddings, lm_head, norms and the vision tower stay as they are.""";
    }

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, Set.of("model", "out", "group-size", "method", "calib", "calib-window", "calib-windows"), Set.of());
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        Path in = Path.of(a.require("model")), out = Path.of(a.require("out"));
        if (!Files.isDirectory(in)) throw new UsageException("--model " + in + ": no such folder");
        Quantizer.Method method;
        try {
            method = Quantizer.Method.valueOf(a.get("method", "awq").toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--method must be rtn or awq, got '" + a.get("method") + "'");
        }
        int gs = a.getInt("group-size", 128);
        if (gs <= 0 || gs % 8 != 0) throw new UsageException("--group-size must be a positive multiple of 8, got " + gs);
        List<int[]> calib = List.of();
        if (method == Quantizer.Method.AWQ) {
            ModelConfig c = ModelConfig.load(in);
            TextSet t = TextSet.load(in, a.has("calib") ? Path.of(a.get("calib")) : null, a.getInt("calib-window", 256),
                    a.getInt("calib-windows", 16), c.vocabSize());
            calib = t.windows();
            System.err.println("calibration: " + t.source() + ", " + calib.size() + " window(s)");
        }
        long t0 = System.nanoTime();
        Quantizer.Report r = Quantizer.quantize(in, out, new Quantizer.Options(gs, method, calib));
        System.out.printf(Locale.ROOT, "quantized %d linear(s) to 4-bit (%s, group %d) in %.1f s: %s -> %s (%.1f MB -> %.1f MB)%n",
                r.packed(), method.name().toLowerCase(Locale.ROOT), gs, (System.nanoTime() - t0) / 1e9, in, out, r.bytesIn() / 1e6, r.bytesOut() / 1e6);
        for (String k : r.kept()) System.out.println("kept 16-bit: " + k);
        if (!r.alphas().isEmpty()) System.out.println("awq alphas: " + r.alphas());
        return 0;
    }
}
