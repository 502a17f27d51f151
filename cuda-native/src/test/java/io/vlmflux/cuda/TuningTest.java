package io.vlmflux.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;

class TuningTest {
    @Test
    void absentPropertiesGiveTheDefaults() {
        assertEquals(Tuning.defaults(), Tuning.from(Map.of()));
        Tuning d = Tuning.defaults();
        assertTrue(d.graphs() && d.batchGraphs() && d.fusedNorm() && d.skinnyGemm() && d.gemvSplitK() && d.prefillMma()
                && d.visionGraphs() && d.batchDecode() && d.cpuSimd() && d.decodeMegakernel() && d.batchSelect());
        assertFalse(d.fusedSilu() || d.cudaDisable() || d.cudaNvrtc() || d.int4Tiled() || d.int4PrefillOverlap() || d.decodeFusedCombine() || d.decodeFusedRope() || d.gemvPrefetch() || d.decodeAhead() || d.int4Persistent() || d.int4Ring() || d.gemmTune() || d.visionFastElementwise());
        assertEquals(2048, d.prefillChunk());
        assertEquals(0, d.decodePrefetchMiB());
        assertEquals(4, d.gemvSplitBlocksPerSm());
        assertEquals(100, d.cpuSpinMicros());
        assertEquals(1L << 30, d.visionFp32MaxBytes());
        assertEquals(Runtime.getRuntime().availableProcessors(), d.cpuThreads());
        assertNull(d.root());
    }

    @Test
    void everyPropertyIsRead() {
        Tuning t = Tuning.from(Map.ofEntries(
                Map.entry("vlmflux.cpu.threads", "3"), Map.entry("vlmflux.cpu.spinMicros", "0"), Map.entry("vlmflux.cpu.simd", "FALSE"),
                Map.entry("vlmflux.cuda.disable", "true"), Map.entry("vlmflux.cuda.nvrtc", " True "), Map.entry("vlmflux.root", "/tmp/r"),
                Map.entry("vlmflux.cuda.graphs", "false"), Map.entry("vlmflux.cuda.batchGraphs", "false"),
                Map.entry("vlmflux.cuda.prefillChunk", "5"), Map.entry("vlmflux.cuda.fusedNorm", "false"),
                Map.entry("vlmflux.cuda.fusedSilu", "true"), Map.entry("vlmflux.cuda.skinnyGemm", "false"),
                Map.entry("vlmflux.cuda.gemvSplitK", "false"), Map.entry("vlmflux.cuda.gemvSplitBlocksPerSm", "7"),
                Map.entry("vlmflux.cuda.prefillMma", "false"), Map.entry("vlmflux.cuda.prefillSplitKv", "true"),
                Map.entry("vlmflux.cuda.evictKernel", "true"), Map.entry("vlmflux.cuda.prefillBf16GateUp", "true"),
                Map.entry("vlmflux.cuda.prefillPipelined", "true"), Map.entry("vlmflux.cuda.decodeVecAttention", "true"),
                Map.entry("vlmflux.cuda.decodeFusedCombine", "true"), Map.entry("vlmflux.cuda.decodeFusedRope", "true"),
                Map.entry("vlmflux.cuda.decodePrefetchMiB", "24"), Map.entry("vlmflux.cuda.gemvPrefetch", "true"), Map.entry("vlmflux.cuda.decodeMegakernel", "false"), Map.entry("vlmflux.cuda.pdl", "true"), Map.entry("vlmflux.cuda.int4Mma", "false"), Map.entry("vlmflux.cuda.int4Tiled", "true"), Map.entry("vlmflux.cuda.int4PrefillOverlap", "true"), Map.entry("vlmflux.live.devicePreprocess", "true"), Map.entry("vlmflux.vision.noGraphs", "true"),
                Map.entry("vlmflux.vision.fp32MaxBytes", "0"), Map.entry("vlmflux.batchDecode", "false"),
                Map.entry("vlmflux.cuda.batchSelect", "false"), Map.entry("vlmflux.cuda.decodeAhead", "true"),
                Map.entry("vlmflux.cuda.int4Persistent", "true"), Map.entry("vlmflux.cuda.int4Ring", "true"),
                Map.entry("vlmflux.cuda.int4PrefillChunkKiB", "8192"), Map.entry("vlmflux.cuda.gemmTune", "true"),
                Map.entry("vlmflux.vision.fastElementwise", "true")));
        assertEquals(new Tuning(3, 0, false, true, true, Path.of("/tmp/r"), false, false, 5, false, true, false, false, 7, false,
                true, true, true, true, true, true, true, 24, true, false, true, false, true, true, true, false, 0, false, false, true, true, true, 8192, true, true), t);
    }

    @Test
    void propertiesRoundTripAndWithSetsOneKnob() {
        Tuning d = Tuning.defaults();
        assertEquals(d, Tuning.from(d.properties()));
        Tuning odd = Tuning.from(Map.of("vlmflux.cuda.prefillChunk", "7", "vlmflux.vision.noGraphs", "true", "vlmflux.root", "/tmp/r",
                "vlmflux.cuda.pdl", "false", "vlmflux.vision.fp32MaxBytes", "12345"));
        assertEquals(odd, Tuning.from(odd.properties()), "every knob survives properties() -> from()");
        Tuning p = d.withPdl(false).withPrefillChunk(33);
        assertFalse(p.pdl());
        assertEquals(33, p.prefillChunk());
        assertEquals(d, p.withPdl(true).withPrefillChunk(d.prefillChunk()), "nothing else changed");
        assertEquals("/x", d.with("vlmflux.root", "/x").root().toString());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.with("vlmflux.cuda.pdll", "true"));
        assertTrue(e.getMessage().contains("vlmflux.cuda.pdll"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> d.with("vlmflux.cuda.pdl", "yes"));
        assertEquals(Map.of(), d.changes());
        assertEquals(Map.of("vlmflux.cuda.pdl", "false", "vlmflux.cuda.prefillChunk", "33"), p.changes());
    }

    @Test
    void badValuesNameThePropertyAndTheValue() {
        IllegalArgumentException a = assertThrows(IllegalArgumentException.class, () -> Tuning.from(Map.of("vlmflux.cuda.graphs", "yes")));
        assertEquals("-Dvlmflux.cuda.graphs=yes: expected true or false", a.getMessage());
        IllegalArgumentException b = assertThrows(IllegalArgumentException.class, () -> Tuning.from(Map.of("vlmflux.cuda.prefillChunk", "2k")));
        assertEquals("-Dvlmflux.cuda.prefillChunk=2k: expected an integer", b.getMessage());
        IllegalArgumentException c = assertThrows(IllegalArgumentException.class, () -> Tuning.from(Map.of("vlmflux.cuda.prefillChunk", "0")));
        assertEquals("vlmflux.cuda.prefillChunk = 0: must be at least 1", c.getMessage());
        IllegalArgumentException d = assertThrows(IllegalArgumentException.class, () -> Tuning.from(Map.of("vlmflux.cpu.threads", "-2")));
        assertTrue(d.getMessage().startsWith("vlmflux.cpu.threads = -2"), d.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Tuning.defaults().withPrefillChunk(0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tuning.from(Map.of("vlmflux.cuda.decodePrefetchMiB", "-1")));
        assertEquals("vlmflux.cuda.decodePrefetchMiB = -1: must be at least 0", e.getMessage());
    }

    @Test
    void processWideReadingIgnoresPerModelProperties() {
        Tuning p = Tuning.processWide(Map.of("vlmflux.cpu.threads", "2", "vlmflux.cuda.graphs", "nonsense")::get);
        assertEquals(2, p.cpuThreads());
        assertTrue(p.graphs(), "per-model knobs stay at their defaults");
        assertThrows(IllegalArgumentException.class, () -> Tuning.processWide(Map.of("vlmflux.cuda.disable", "1")::get));
    }

    @Test
    void withersChangeOneKnob() {
        Tuning d = Tuning.defaults();
        assertEquals(false, d.withGraphs(false).graphs());
        assertEquals(d, d.withGraphs(false).withGraphs(true));
        assertFalse(d.withBatchGraphs(false).batchGraphs());
        assertFalse(d.withSkinnyGemm(false).skinnyGemm());
        assertFalse(d.withBatchDecode(false).batchDecode());
        assertTrue(d.withInt4Tiled(true).int4Tiled());
        assertEquals(d, d.withInt4Tiled(true).withInt4Tiled(false));
        assertTrue(d.withInt4PrefillOverlap(true).int4PrefillOverlap());
        assertEquals(64, d.withPrefillChunk(64).prefillChunk());
        assertEquals(d.withPrefillChunk(64), d.withPrefillChunk(64).withSkinnyGemm(true));
    }
}
