package io.vlmflux.llm.cuda;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.constrain.Constraint;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.constrain.Constraints;
import io.vlmflux.llm.constrain.TokenControls;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Constrained decoding with the mask applied on the device (the logits never leave the GPU): greedy and sampled
 * outputs satisfy the constraint, and greedy outputs equal the CPU backend's host-masked ones token for token except
 * where bf16 rounding flips a near-tie (counted; most must agree).
 */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class CudaConstrainedTest {
    static final ObjectMapper JSON = new ObjectMapper();
    static final String SCHEMA = """
            {"type":"object","properties":{"open":{"type":"boolean"},"count":{"type":"integer","minimum":0,"maximum":99},
             "label":{"type":"string","enum":["door","window","gate"]}},"required":["open","count","label"],"additionalProperties":false}""";

    @ParameterizedTest
    @ValueSource(strings = {"tiny-qwen2", "tiny-qwen3", "tiny-llama"})
    void deviceMaskedOutputsSatisfyTheConstraintAndMatchTheCpu(String model) throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir(model));
        Constraint schema = Constraints.compile(ConstraintSpec.jsonSchema(SCHEMA), tok);
        Constraint regex = Constraints.compile(ConstraintSpec.regex("[a-f0-9]{4}-[0-9]{2}"), tok);
        String[] prompts = {"Answer: ", "The door is ", "JSON please: ", "x", "Count the gates. "};
        int same = 0, total = 0;
        try (Decoder gpu = Models.load(Fixtures.dir(model), "cuda"); Decoder cpu = Models.load(Fixtures.dir(model), "cpu");
             Generator g = new Generator(gpu, null, null); Generator c = new Generator(cpu, null, null)) {
            assertTrue(gpu.masksOnDevice(SamplingParams.greedyDecoding()));
            for (String p : prompts) {
                int[] ids = tok.encode(p);
                for (Constraint k : List.of(schema, regex)) {
                    GenerateOptions o = new GenerateOptions(SamplingParams.greedyDecoding(), 200, Set.of(), List.of(), 0, null, TokenControls.constrained(k));
                    List<TokenEvent> a = g.generateBlocking(MultimodalPrompt.text(ids), o, tok.streamingDecoder(true));
                    List<TokenEvent> b = c.generateBlocking(MultimodalPrompt.text(ids), o, tok.streamingDecoder(true));
                    check(k, a, model + " '" + p + "'");
                    check(k, b, model + " '" + p + "' cpu");
                    total++;
                    if (a.stream().map(TokenEvent::tokenId).toList().equals(b.stream().map(TokenEvent::tokenId).toList())) same++;
                }
                // sampled on the device under the mask
                GenerateOptions s = new GenerateOptions(SamplingParams.sample(1.0, 0, 1.0, 0.0, p.length()), 200, Set.of(), List.of(), 0, null,
                        TokenControls.constrained(schema));
                check(schema, g.generateBlocking(MultimodalPrompt.text(ids), s, tok.streamingDecoder(true)), model + " sampled '" + p + "'");
            }
        }
        System.out.printf("%s: %d of %d greedy constrained outputs identical on cuda and cpu%n", model, same, total);
        assertTrue(same * 10 >= total * 7, model + ": only " + same + " of " + total + " greedy outputs equal the CPU's");
    }

    /**
     * A recursive grammar (pushdown: the host picks each step's row by configuration, the device masks): every token
     * the GPU picks is allowed, a finished output is a sentence, greedy cuda and cpu mostly agree.
     */
    @ParameterizedTest
    @ValueSource(strings = {"tiny-qwen2", "tiny-qwen3", "tiny-llama"})
    void recursiveGrammarMaskedOnTheDevice(String model) throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir(model));
        var spec = ConstraintSpec.grammar("root ::= list\nlist ::= \"[\" (item (\", \" item){0,3})? \"]\"\nitem ::= [0-9]{1,3} | \"\\\"\" [a-z]{0,8} \"\\\"\" | list\n");
        Constraint k = Constraints.compile(spec, tok);
        int same = 0, total = 0, finished = 0;
        try (Decoder gpu = Models.load(Fixtures.dir(model), "cuda"); Decoder cpu = Models.load(Fixtures.dir(model), "cpu");
             Generator g = new Generator(gpu, null, null); Generator c = new Generator(cpu, null, null)) {
            for (String p : new String[] {"List: ", "Numbers ", "x", "[", "Give me nested lists: "}) {
                int[] ids = tok.encode(p);
                for (SamplingParams sp : List.of(SamplingParams.greedyDecoding(), SamplingParams.sample(1.0, 0, 1.0, 0.0, p.length()))) {
                    GenerateOptions o = new GenerateOptions(sp, 120, Set.of(), List.of(), 0, null, TokenControls.constrained(k));
                    List<TokenEvent> a = g.generateBlocking(MultimodalPrompt.text(ids), o, tok.streamingDecoder(true));
                    int state = k.start();
                    StringBuilder text = new StringBuilder();
                    for (TokenEvent e : a) { state = k.advance(state, e.tokenId()); text.append(e.textDelta()); }
                    if (k.isEnd(a.getLast().tokenId())) {
                        finished++;
                        assertTrue(spec.matches(text.toString()), model + " '" + p + "': " + text);
                    }
                    if (sp.equals(SamplingParams.greedyDecoding())) {
                        List<TokenEvent> b = c.generateBlocking(MultimodalPrompt.text(ids), o, tok.streamingDecoder(true));
                        total++;
                        if (a.stream().map(TokenEvent::tokenId).toList().equals(b.stream().map(TokenEvent::tokenId).toList())) same++;
                    }
                }
            }
        }
        System.out.printf("%s: recursive grammar, %d of %d greedy outputs identical on cuda and cpu, %d of 10 finished%n", model, same, total, finished);
        assertTrue(same * 10 >= total * 6, model + ": only " + same + " of " + total + " greedy outputs equal the CPU's");
    }

    private static void check(Constraint k, List<TokenEvent> ev, String where) throws Exception {
        TokenEvent last = ev.getLast();
        assertTrue(k.isEnd(last.tokenId()), where + ": ends with an end token");
        StringBuilder text = new StringBuilder();
        ev.forEach(e -> text.append(e.textDelta()));
        String t = text.toString();
        if (t.startsWith("{")) {
            JsonNode v = JSON.readTree(t);
            assertTrue(v.get("open").isBoolean() && v.get("count").isInt() && List.of("door", "window", "gate").contains(v.get("label").asText()), where + ": " + t);
        } else {
            assertTrue(t.matches("[a-f0-9]{4}-[0-9]{2}"), where + ": " + t);
        }
    }
}
