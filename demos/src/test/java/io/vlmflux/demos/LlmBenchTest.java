package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.demos.bench.LlmBench;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** {@code vlmflux bench llm}: the cpu path end to end on the tiny shape, backend choice and argument errors. */
class LlmBenchTest {
    static Path fixture(String m) {
        return Path.of(System.getProperty("vlmflux.root", "..")).resolve("llm/src/test/resources/fixtures").resolve(m);
    }

    @Test
    void cpuBenchOfAFixturePrintsOneJsonLine() throws Exception {
        String out = ProbeCommandTest.capture(new LlmBench(), "--backend", "cpu", "--model", fixture("tiny-qwen3").toString(),
                "--prompt-tokens", "8", "--decode-tokens", "4", "--json").trim();
        JsonNode o = new ObjectMapper().readTree(out);
        assertEquals("cpu", o.get("backend").asText());
        assertEquals(8, o.get("prompt_tokens").asInt());
        assertTrue(o.get("decode_tokens_per_s").asDouble() > 0, out);
        assertTrue(o.get("prefill_ms").asDouble() > 0, out);
    }

    @Test
    void autoRunsWhereverItLandsAndArgumentsAreChecked() throws Exception {
        if (!Gpu.isAvailable()) {
            // auto lands on cpu here: cuda-only options are a usage error naming the chosen backend
            UsageException e = assertThrows(UsageException.class, () -> new LlmBench().run(List.of("--model", fixture("tiny-qwen3").toString(), "--contexts", "16")));
            assertTrue(e.getMessage().contains("cpu"), e.getMessage());
            IllegalStateException x = assertThrows(IllegalStateException.class, () -> new LlmBench().run(List.of("--backend", "cuda", "--shape", "tiny")));
            assertTrue(x.getMessage().startsWith("backend 'cuda' cannot run here: "), x.getMessage());
        }
        UsageException sampledOnCpu = assertThrows(UsageException.class, () -> new LlmBench().run(List.of("--backend", "cpu", "--shape", "tiny", "--sampled")));
        assertTrue(sampledOnCpu.getMessage().contains("--sampled"), sampledOnCpu.getMessage());
        UsageException profileOnCpu = assertThrows(UsageException.class, () -> new LlmBench().run(List.of("--backend", "cpu", "--shape", "tiny", "--profile-prefill")));
        assertTrue(profileOnCpu.getMessage().contains("--profile-prefill"), profileOnCpu.getMessage());
        assertThrows(UsageException.class, () -> new LlmBench().run(List.of("--backend", "tpu")));
        assertThrows(UsageException.class, () -> new LlmBench().run(List.of("--backend", "cuda", "--contexts", "512,x")));
        assertThrows(UsageException.class, () -> new LlmBench().run(List.of("--model", "/no/such/dir")));
        assertThrows(UsageException.class, () -> new LlmBench().run(List.of("--model", "a", "--shape", "tiny")));
    }
}
