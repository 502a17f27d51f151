package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.llm.DecoderBackend;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.Models;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Runs everywhere: the registry finds the backend by name; without a GPU, loading fails with the reason. */
class CudaBackendSelectionTest {
    @Test
    void registryFindsTheCudaBackend() {
        DecoderBackend b = Models.backend("cuda");
        assertEquals("cuda", b.name());
        assertInstanceOf(CudaDecoderBackend.class, b);
    }

    @Test
    void autoPicksCudaExactlyWhenAGpuIsUsable() throws Exception {
        String expected = Gpu.isAvailable() ? "cuda" : "cpu";
        assertEquals(expected, Models.resolve("auto"));
        assertEquals(expected, Models.resolve(" AUTO "));
        assertEquals(expected, Models.backend("auto").name());
        assertEquals("cpu", Models.resolve("cpu"));
        assertEquals("cuda", Models.resolve("cuda"));
        try (io.vlmflux.llm.Decoder d = Models.load(Fixtures.dir("tiny-qwen3"), "auto")) {
            assertEquals(expected, d.backend());
        }
    }

    @Test
    void withoutAGpuLoadingSaysWhy() {
        Assumptions.assumeFalse(Gpu.isAvailable(), "a GPU is present");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Models.load(Fixtures.dir("tiny-qwen3"), "cuda"));
        assertTrue(e.getMessage().contains("cannot run here"), e.getMessage());
        assertFalse(CudaDecoderBackend.unavailableReason().isEmpty());
    }
}
