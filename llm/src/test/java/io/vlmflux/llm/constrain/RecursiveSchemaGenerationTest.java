package io.vlmflux.llm.constrain;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.llm.Decoder;
import io.vlmflux.llm.FinishReason;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.GenerateOptions;
import io.vlmflux.llm.Generator;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.MultimodalPrompt;
import io.vlmflux.llm.SamplingParams;
import io.vlmflux.llm.TokenEvent;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Random recursive schemas (a tree node with a random payload schema and a $ref'd array of children) decoded by a
 * real tiny model: every finished output parses and validates (payload by the independent validator, structure by
 * hand), greedy steps are the argmax over the allowed tokens.
 */
class RecursiveSchemaGenerationTest {
    private static final ObjectMapper STRICT = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    static ObjectNode tree(SplittableRandom r, ObjectNode payload, int maxKids) {
        ObjectNode node = Schemas.JSON.createObjectNode();
        node.put("type", "object");
        ObjectNode props = node.putObject("properties");
        props.set("v", payload);
        ObjectNode kids = props.putObject("kids");
        kids.put("type", "array");
        kids.putObject("items").put("$ref", "#/$defs/node");
        kids.put("maxItems", maxKids);
        node.putArray("required").add("v");
        node.put("additionalProperties", false);
        ObjectNode root = Schemas.JSON.createObjectNode();
        root.putObject("$defs").set("node", node);
        if (r.nextBoolean()) root.put("$ref", "#/$defs/node");
        else {
            var any = root.putArray("anyOf");
            any.addObject().put("type", "null");
            any.addObject().put("$ref", "#/$defs/node");
        }
        return root;
    }

    private static String validateTree(JsonNode payload, int maxKids, JsonNode v, String path) {
        if (!v.isObject()) return path + ": not an object";
        if (!v.has("v")) return path + ": no v";
        String e = Schemas.validate(payload, v.get("v"), path + "/v");
        if (e != null) return e;
        for (var it = v.fieldNames(); it.hasNext(); ) { String f = it.next(); if (!f.equals("v") && !f.equals("kids")) return path + ": extra " + f; }
        if (v.has("kids")) {
            JsonNode k = v.get("kids");
            if (!k.isArray() || k.size() > maxKids) return path + "/kids: not an array of at most " + maxKids;
            for (int i = 0; i < k.size(); i++) { String x = validateTree(payload, maxKids, k.get(i), path + "/kids/" + i); if (x != null) return x; }
        }
        return null;
    }

    @Test void randomRecursiveSchemasDecodeToValidJson() throws Exception {
        Tokenizer tok = Tokenizer.load(Fixtures.dir("tiny-qwen2"));
        int[] prompt = tok.encode("A tree in JSON: ");
        SplittableRandom r = new SplittableRandom(8);
        int finished = 0;
        try (Decoder dec = Models.load(Fixtures.dir("tiny-qwen2"), "cpu"); Generator gen = new Generator(dec, null, null)) {
            for (int i = 0; i < 100; i++) {
                ObjectNode payload = Schemas.random(r, 2);
                int maxKids = 1 + r.nextInt(3);
                ObjectNode schema = tree(r, payload, maxKids);
                Constraint c = Constraints.compile(ConstraintSpec.jsonSchema(schema.toString()), tok);
                assertInstanceOf(GrammarConstraint.class, c, "a recursive $ref compiles to a pushdown");
                boolean greedy = i % 2 == 0;
                SamplingParams p = greedy ? SamplingParams.greedyDecoding() : SamplingParams.sample(1.0, 0, 1.0, 0.0, i);
                List<TokenEvent> ev = gen.generateBlocking(MultimodalPrompt.text(prompt),
                        new GenerateOptions(p, 160, Set.of(), List.of(), 0, null, TokenControls.constrained(c)), tok.streamingDecoder(true));
                int[] out = ev.stream().mapToInt(TokenEvent::tokenId).toArray();
                String where = "schema " + i + " " + schema;
                if (greedy) ConstrainedGenerationTest.assertGreedyOverAllowedPrefix(dec, c, prompt, out, where);
                if (ev.getLast().finishReason() != FinishReason.STOP) { int s = c.start(); for (int t : out) s = c.advance(s, t); continue; }
                StringBuilder text = new StringBuilder();
                ev.forEach(e -> text.append(e.textDelta()));
                JsonNode v = STRICT.readTree(text.toString());
                if (!v.isNull()) assertNull(validateTree(payload, maxKids, v, ""), () -> where + " -> " + text);
                finished++;
            }
        }
        assertTrue(finished > 50, "finished outputs: " + finished + " of 100");
    }
}
