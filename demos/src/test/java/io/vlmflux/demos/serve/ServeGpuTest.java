package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.cuda.gpu.Gpu;
import io.vlmflux.llm.Backend;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.runtime.RuntimeOptions;
import io.vlmflux.llm.runtime.VlmRuntime;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;

import java.net.http.HttpResponse;
import java.util.List;
import java.util.Map;

import static io.vlmflux.demos.serve.ChatServerTest.*;
import static org.junit.jupiter.api.Assertions.*;

/** The server on the cuda backend: constrained answers (device mask), logprobs (host path) and the GPU memory meters. */
@Tag("gpu")
@EnabledIf(value = "io.vlmflux.cuda.gpu.Gpu#isAvailable", disabledReason = "no usable GPU (the logger vlmflux.cuda says why: CUDA backend unavailable: ...)")
class ServeGpuTest {
    @Test void constrainedAnswersLogprobsAndGpuMetersOnCuda() throws Exception {
        assertTrue(Gpu.isAvailable());
        try (VlmRuntime runtime = VlmRuntime.load(MODEL, RuntimeOptions.defaults().withBackend(Backend.CUDA));
             ChatServer server = ChatServer.start(runtime, ServeOptions.defaults().withPort(0))) {
            HttpResponse<String> r = post(server, """
                    {"model":"shapes-vl","messages":[{"role":"user","content":"a red circle"}],"max_tokens":120,"temperature":0,
                     "response_format":{"type":"json_schema","json_schema":{"name":"s","schema":%s}}}""".formatted(ChatApiTest.SCHEMA), List.of());
            assertEquals(200, r.statusCode(), r.body());
            String text = JSON.readTree(r.body()).at("/choices/0/message/content").asText();
            assertTrue(ConstraintSpec.jsonSchema(ChatApiTest.SCHEMA).matches(text), text);
            r = post(server, """
                    {"model":"shapes-vl","messages":[{"role":"user","content":"a red circle"}],"max_tokens":8,"temperature":0,"logprobs":true,"top_logprobs":2}""",
                    List.of());
            JsonNode content = JSON.readTree(r.body()).at("/choices/0/logprobs/content");
            assertTrue(content.size() > 0 && content.get(0).get("top_logprobs").size() == 2, r.body());
            Map<String, Double> m = ChatApiTest.scrape(server);
            assertTrue(m.get("vlmflux_gpu_memory_total_bytes") > 1e9, m.toString());
            assertTrue(m.get("vlmflux_gpu_memory_used_bytes") > 0, m.toString());
        }
    }
}
