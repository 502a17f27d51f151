package io.vlmflux.pipeline.live;

import io.vlmflux.llm.Backend;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

/** {@link DemoModelMotionTest} on the cuda backend (device rows, the cuda KV cache re-prefilled as the window slides). */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class DemoModelMotionGpuTest {
    @Test void motionAnswersFollowTheBallOnCuda() { DemoModelMotionTest.check(Backend.CUDA); }
}
