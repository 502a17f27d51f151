package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.demos.infer.EdgeLlmRequests;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.Color;
import java.awt.Graphics2D;
import java.awt.image.BufferedImage;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@code vlmflux infer}: a request file in TensorRT Edge-LLM's llm_inference format (text, an image, a multi-turn
 * conversation, batches of two) run on the demo model on the cpu, and its response file read back.
 */
class InferCommandTest {
    static final Path MODEL = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
    static final ObjectMapper JSON = new ObjectMapper();

    @Test void aRequestFileRoundTrips(@TempDir Path dir) throws Exception {
        Path image = dir.resolve("circle.png");
        BufferedImage img = new BufferedImage(320, 240, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setColor(Color.WHITE);
        g.fillOval(200, 130, 80, 80);
        g.dispose();
        assertTrue(ImageIO.write(img, "png", image.toFile()));
        Path in = dir.resolve("requests.json"), out = dir.resolve("out/responses.json");
        Files.writeString(in, """
                {"batch_size": 2, "temperature": 0.0, "top_p": 1.0, "top_k": 1, "max_generate_length": 24, "num_logprobs": 2,
                 "apply_chat_template": true, "enable_thinking": false, "available_lora_weights": {},
                 "requests": [
                   {"messages": [{"role": "user", "content": [{"type": "image", "image": "%s"}, {"type": "text", "text": "Describe the image."}]}],
                    "answer": "a circle"},
                   {"messages": [{"role": "system", "content": "You describe scenes."}, {"role": "user", "content": "a red circle"}],
                    "save_system_prompt_kv_cache": true, "stop": ["zzz"]},
                   {"messages": [{"role": "user", "content": "a red circle"}, {"role": "assistant", "content": "A red circle."},
                                 {"role": "user", "content": "a blue square"}], "disable_spec_decode": true}
                 ]}""".formatted(image.toAbsolutePath().toString().replace("\\", "\\\\")));
        int rc = new InferCommand().run(List.of("--input", in.toString(), "--output", out.toString(), "--model", MODEL.toString(), "--backend", "cpu"));
        assertEquals(0, rc);
        JsonNode doc = JSON.readTree(out.toFile());
        assertEquals(in.toString(), doc.get("input_file").asText());
        JsonNode rs = doc.get("responses");
        assertEquals(3, rs.size(), doc.toPrettyString());
        int[][] idx = {{0, 0}, {0, 1}, {1, 0}};   // request_idx is the batch, batch_idx the place in it
        for (int i = 0; i < 3; i++) {
            JsonNode r = rs.get(i);
            assertEquals(idx[i][0], r.get("request_idx").asInt(), r.toString());
            assertEquals(idx[i][1], r.get("batch_idx").asInt(), r.toString());
            assertFalse(r.get("output_text").asText().isBlank(), r.toString());
            assertTrue(r.get("messages").isArray() && r.get("messages").get(0).get("content").isArray(), r.toString());
            assertTrue(r.has("formatted_system_prompt"), r.toString());
            assertTrue(r.get("formatted_complete_request").asText().contains("a "), "the rendered prompt: " + r);
            assertFalse(r.has("error"), r.toString());
            assertEquals(r.get("completion_tokens").asInt() - (r.get("finish_reason").asText().equals("stop") ? 1 : 0), r.get("logprobs").size(), r.toString());
            assertEquals(2, r.get("logprobs").get(0).get("top_logprobs").size(), r.toString());
        }
        assertTrue(rs.get(0).get("output_text").asText().contains("circle"), rs.get(0).toString());
        assertEquals("image", rs.get(0).at("/messages/0/content/0/type").asText());
        assertEquals("assistant", rs.get(2).at("/messages/1/role").asText());
        // greedy and per request: the same conversation alone gives the same text as inside a batch
        Path single = dir.resolve("single.json"), singleOut = dir.resolve("single-out.json");
        Files.writeString(single, """
                {"temperature": 0.0, "max_generate_length": 24,
                 "requests": [{"messages": [{"role": "system", "content": "You describe scenes."}, {"role": "user", "content": "a red circle"}]}]}""");
        assertEquals(0, new InferCommand().run(List.of("--input", single.toString(), "--output", singleOut.toString(), "--model", MODEL.toString(), "--backend", "cpu")));
        assertEquals(rs.get(1).get("output_text"), JSON.readTree(singleOut.toFile()).at("/responses/0/output_text"));
    }

    @Test void badFilesNameTheFieldAndReason(@TempDir Path dir) throws Exception {
        record Case(String json, String field) {}
        for (Case c : List.of(
                new Case("{\"batch_size\": 1}", "'requests'"),
                new Case("{\"requests\": [{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\", \"image\": \"nope.png\"}]}]}]}",
                        "'requests[0].messages[0].content[0].image'"),
                new Case("{\"requests\": [{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"video\", \"video\": \"a.mp4\"}]}]}]}",
                        "'requests[0].messages[0].content[0].type'"),
                new Case("{\"requests\": [{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}]}", "'requests[0].messages[0].role'"),
                new Case("{\"available_lora_weights\": {\"fr\": \"a.safetensors\"}, \"requests\": [{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}]}",
                        "'available_lora_weights'"),
                new Case("{\"temperature\": \"hot\", \"requests\": []}", "'temperature'"),
                new Case("{\"requests\": [", "not valid JSON"))) {
            Path f = dir.resolve("bad.json");
            Files.writeString(f, c.json());
            var e = assertThrows(IllegalArgumentException.class, () -> EdgeLlmRequests.read(f, null, null, null), c.json());
            assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains(c.field()), c.field() + ": " + e.getMessage());
        }
    }
}
