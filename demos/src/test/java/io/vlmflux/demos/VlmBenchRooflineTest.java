package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.demos.bench.VlmBench;
import io.vlmflux.llm.ModelConfig;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code bench vlm --ttft --bandwidth-gbps}: the decode's memory roofline of a VLM through the runtime (issue 14's table
 * came from it), on the demo model with the cpu backend: the bytes a token reads are the language model's weights plus
 * the K/V at the decode's middle position, and the fraction is the measured decode speed over bandwidth / bytes.
 */
class VlmBenchRooflineTest {
    private static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");

    private static JsonNode run(String... extra) throws Exception {
        List<String> args = new java.util.ArrayList<>(List.of("--model", MODEL.toString(), "--ttft", "--iters", "1", "--decode-tokens", "6",
                "--question-tokens", "3", "--ttft-size", "64x48", "--e2e-backend", "cpu", "--json"));
        args.addAll(List.of(extra));
        String out = ProbeCommandTest.capture(new VlmBench(), args.toArray(String[]::new)).trim();
        return new ObjectMapper().readTree(out.substring(out.lastIndexOf('\n') + 1));
    }

    @Test
    void rooflineIsTheBytesATokenReadsOverTheGivenBandwidth() throws Exception {
        ModelConfig c = ModelConfig.load(MODEL);
        JsonNode o = run("--bandwidth-gbps", "123.5");
        int prompt = o.get("prompt_tokens").asInt();
        long H = c.hiddenSize(), I = c.intermediateSize(), V = c.vocabSize();
        long perLayer = 2 * ((c.qDim() + 2L * c.kvDim()) * H + H * c.qDim() + 3 * I * H) + 2 * 2 * H;   // bf16 linears + two norms
        long bytes = c.numLayers() * perLayer + 2 * (V * H + H) + 2L * c.numLayers() * c.kvDim() * 2 * (prompt + 6 / 2);
        assertEquals(bytes, o.get("bytes_per_token").asLong());
        assertEquals(123.5, o.get("bandwidth_GBps").asDouble(), 1e-9);
        assertEquals(123.5e9 / bytes, o.get("roofline_tok_s").asDouble(), 1e-6 * o.get("roofline_tok_s").asDouble());
        double tps = o.get("decode_tokens_per_s").asDouble();
        assertTrue(tps > 0, o.toString());
        assertEquals(tps / (123.5e9 / bytes), o.get("frac_of_roofline").asDouble(), 1e-9);

        JsonNode plain = run();   // no bandwidth given: the bytes, no roofline
        assertEquals(bytes, plain.get("bytes_per_token").asLong());
        assertFalse(plain.has("roofline_tok_s"), plain.toString());

        for (String bad : List.of("0", "-3", "fast", "Infinity"))
            assertTrue(assertThrows(UsageException.class, () -> run("--bandwidth-gbps", bad)).getMessage().contains("--bandwidth-gbps"), bad);
    }
}
