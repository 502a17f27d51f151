package io.vlmflux.demos.fleet;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CameraDefTest {
    static CameraDef parse(String key, String json) { return CameraDef.parse(key, json.getBytes(StandardCharsets.UTF_8), "cams-3@17"); }

    static String error(String key, String json) { return assertThrows(IllegalArgumentException.class, () -> parse(key, json)).getMessage(); }

    @Test void parsesAndRoundTrips() {
        CameraDef d = parse("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"every\":\"1s\",\"prompt\":\"Who is there?\",\"alerts\":[{\"name\":\"x\",\"question\":\"Is the gate open?\",\"answers\":\"yes|no\",\"agree\":3}]}");
        assertEquals("test:ball", d.source());
        assertEquals(java.time.Duration.ofSeconds(1), ((io.vlmflux.pipeline.SamplingPolicy.MinInterval) d.sampling()).interval());
        assertEquals("Who is there?", d.prompt());
        assertEquals(d, CameraDef.parse("gate", d.toJson(), "again"));
        var alerts = d.alertList();
        assertEquals(1, alerts.size());
        assertEquals("x", alerts.getFirst().name());
        assertEquals("Is the gate open?", alerts.getFirst().question());
        assertEquals(new io.vlmflux.llm.constrain.ConstraintSpec.Choice(java.util.List.of("yes", "no")), alerts.getFirst().constraint());
        assertEquals(3, alerts.getFirst().policy().agree());
        CameraDef min = parse("yard", "{\"id\":\"yard\",\"source\":\"test:smpte\"}");
        assertEquals("2s", min.every());
        assertNull(min.prompt());
        assertNull(min.alertList(), "no alerts field: the node's alerts run");
        assertEquals(java.util.List.of(), parse("yard", "{\"id\":\"yard\",\"source\":\"test:smpte\",\"alerts\":[]}").alertList(), "alerts: [] means none");
    }

    @Test void badRecordsNameTheRecordAndTheReason() {
        String e = error("gate", "{\"id\":\"gate\"");
        assertTrue(e.startsWith("cams-3@17 (key 'gate'): not JSON"), e);
        e = error("gate", "{\"id\":\"other\",\"source\":\"test:ball\"}");
        assertTrue(e.contains("the key 'gate' is not the camera's id 'other'"), e);
        e = error("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"fps\":3}");
        assertTrue(e.contains("unknown field 'fps'"), e);
        e = error("gate", "{\"id\":\"gate\"}");
        assertTrue(e.contains("field 'source' is required"), e);
        e = error("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"every\":\"soon\"}");
        assertTrue(e.contains("field 'every'") && e.contains("soon"), e);
        e = error("a b", "{\"id\":\"a b\",\"source\":\"test:ball\"}");
        assertTrue(e.contains("field 'id'"), e);
        e = error("gate", "[1]");
        assertTrue(e.contains("a camera is a JSON object"), e);
        e = error("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"alerts\":{}}");
        assertTrue(e.contains("field 'alerts': must be an array"), e);
        e = error("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"alerts\":[{\"question\":\"Q?\"},{\"answers\":\"yes|no\"}]}");
        assertTrue(e.startsWith("cams-3@17 (key 'gate'): field 'alerts[1]': field 'question' is required"), e);
        e = error("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"alerts\":[{\"question\":\"Q?\",\"hold\":2}]}");
        assertTrue(e.contains("field 'alerts[0].hold': unknown field 'hold'"), e);
        e = error("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"alerts\":[{\"question\":\"Q?\",\"answers\":\"a||b\"}]}");
        assertTrue(e.contains("field 'alerts[0]': field 'answers'") && e.contains("is empty"), e);
        e = error("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"alerts\":[{\"question\":\"Q?\",\"constraint\":{\"regex\":\"a\",\"choice\":[\"b\"]}}]}");
        assertTrue(e.contains("field 'alerts[0]': field 'constraint': exactly one of"), e);
        e = error("gate", "{\"id\":\"gate\",\"source\":\"test:ball\",\"alerts\":[{\"question\":\"Q?\"},{\"question\":\"Q?\"}]}");
        assertTrue(e.contains("field 'alerts': two alerts are named 'Q?'"), e);
    }
}
