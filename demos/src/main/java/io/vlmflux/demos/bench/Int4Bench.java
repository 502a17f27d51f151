package io.vlmflux.demos.bench;

import io.vlmflux.demos.Args;
import io.vlmflux.demos.Command;
import io.vlmflux.demos.UsageException;
import io.vlmflux.llm.quant.Int4MatmulBench;

import java.util.List;
import java.util.Set;

/**
 * {@code vlmflux bench int4}: the CPU W4A16 matmul against bf16 on the same shape: decode GEMV (n = 1) and a small
 * prefill tile, random weights, median of several timed passes after a warm-up.
 */
public final class Int4Bench implements Command {
    @Override public String summary() { return "CPU int4 (W4A16) vs bf16 matmul speed on one linear shape"; }

    @Override public String usage() {
        return """
                vlmflux bench int4 [--rows 4864] [--cols 896] [--group-size 128] [--act-order] [--inputs 1,8] [--seconds 2]
                  --rows, --cols   the linear's [out, in] (default Qwen2.5-0.5B's gate_proj)
                  --group-size N   input columns per group (multiples of 128/64/32 take the 16/8/4-lane kernel, others scalar)
                  --act-order      permuted groups (GPTQ desc_act)
                  --inputs LIST    input rows per call: 1 = decode GEMV, more = prefill
                Prints ms per call, weight GB/s and GMAC/s for int4 and bf16, and the speed-up.""";
    }

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, Set.of("rows", "cols", "group-size", "inputs", "seconds"), Set.of("act-order"));
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().get(0) + "'");
        int rows = a.getInt("rows", 4864), cols = a.getInt("cols", 896), gs = a.getInt("group-size", 128);
        double seconds = a.getDouble("seconds", 2);
        if (rows <= 0 || cols <= 0 || cols % 8 != 0 || gs <= 0 || gs % 8 != 0 || cols % gs != 0)
            throw new UsageException("need rows > 0, cols a multiple of 8 and of --group-size (a multiple of 8)");
        Int4MatmulBench.run(rows, cols, gs, a.flag("act-order"), a.get("inputs", "1,8"), seconds, System.out);
        return 0;
    }
}
