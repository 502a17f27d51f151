package io.vlmflux.llm;

import io.vlmflux.cuda.gpu.DeviceBuffer;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Device embedding spans: validated like host spans, kept through moves and prompts, refused by the CPU decoder by name. */
class DeviceSpanTest {
    static final DeviceBuffer ROWS = new DeviceBuffer("encoder rows", 0x1000, 2L * 6 * 32);   // never dereferenced here

    @Test void validatesSizeAndExclusiveStorage() {
        EmbeddingSpan s = EmbeddingSpan.deviceImage(3, 6, 32, ROWS, true, 4, 6, 42L);
        assertTrue(s.onDevice());
        assertEquals(9, s.end());
        EmbeddingSpan moved = s.at(0);
        assertSame(ROWS, moved.deviceRows().buffer());
        assertTrue(moved.deviceRows().bf16());
        var small = assertThrows(IllegalArgumentException.class, () -> EmbeddingSpan.deviceImage(0, 6, 32, ROWS, false, 4, 6, 1L));
        assertTrue(small.getMessage().contains("encoder rows") && small.getMessage().contains("fp32"), small.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new EmbeddingSpan(0, 6, 32, (SpanRows) null, 1, 4, 6, 1L, 0));
        assertThrows(IllegalStateException.class, () -> EmbeddingSpan.image(0, new float[6 * 32], 32, 4, 6, 1L).deviceRows());
        var host = assertThrows(IllegalStateException.class, s::embeddings);
        assertTrue(host.getMessage().contains("device rows 'encoder rows'") && host.getMessage().contains("position 3"), host.getMessage());
    }

    @Test void theCpuDecoderRefusesADeviceSpanNamingIt() throws Exception {
        try (Decoder d = Models.load(Fixtures.dir("tiny-qwen2vl"), "cpu")) {
            int h = d.config().hiddenSize();
            DeviceBuffer rows = new DeviceBuffer("vision rows", 0x2000, 2L * 4 * h);
            int pad = d.config().imageTokenId();
            int[] tokens = {1, pad, pad, pad, pad, 2};
            MultimodalPrompt p = new MultimodalPrompt(tokens, List.of(EmbeddingSpan.deviceImage(1, 4, h, rows, true, 4, 4, 7L)));
            try (KvCache c = d.newCache(16)) {
                var e = assertThrows(IllegalStateException.class, () -> d.forward(c, new ForwardInput(p.tokens(), p.spans(), null), false));
                assertTrue(e.getMessage().contains("vision rows") && e.getMessage().contains("cuda"), e.getMessage());
            }
        }
    }
}
