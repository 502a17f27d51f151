package io.vlmflux.demos;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * {@link DemoModelHeldOutTest} on the cuda backend: the demo model's held-out cases through {@code vlmflux generate
 * --backend cuda} (bf16 weights, the GPU vision tower and preprocessing) are answered right as often and on the same
 * cases as transformers answers them (a bf16 near-tie may flip one: the bound is 95% agreement).
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class DemoModelHeldOutGpuTest {
    @Test void heldOutCasesOnCuda() throws Exception { DemoModelHeldOutTest.check("cuda"); }
}
