package io.vlmflux.demos;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FleetCommandTest {
    static String usageError(String... args) {
        return assertThrows(UsageException.class, () -> new FleetCommand().run(List.of(args))).getMessage();
    }

    @Test void badFlagsAreUsageErrorsNamingTheFlag() {
        assertTrue(usageError().contains("--fleet"));
        assertTrue(usageError("--fleet", "localhost:9092").contains("kafka://BROKERS"));
        assertTrue(usageError("--fleet", "kafka://nohost").contains("not host:port"));
        assertTrue(usageError("--fleet", "kafka://h:9092", "--events-topic", "a b").contains("--events-topic"));
        assertTrue(usageError("--fleet", "kafka://h:9092", "--session-timeout", "soon").contains("--session-timeout"));
        assertTrue(usageError("--fleet", "kafka://h:9092", "--session-timeout", "500ms").contains("at least 1s"));
        assertTrue(usageError("--fleet", "kafka://h:9092", "--captioner", "qwen").contains("only 'stats'"));
        assertTrue(usageError("--fleet", "kafka://h:9092", "--port", "70000").contains("--port"));
        assertTrue(usageError("--fleet", "kafka://h:9092", "extra").contains("unexpected argument"));
        assertTrue(new FleetCommand().usage().contains("--session-timeout"));
        assertTrue(Main.find("fleet") instanceof FleetCommand);
    }

    static String serveUsageError(String... args) {
        return assertThrows(UsageException.class, () -> new ServeCommand().run(List.of(args))).getMessage();
    }

    /** serve --fleet checks its fleet flags before loading the model. */
    @Test void serveFleetFlagsAreCheckedBeforeTheModelLoads() {
        assertTrue(serveUsageError("--group", "g").contains("--group is a fleet flag"));
        assertTrue(serveUsageError("--fleet", "localhost:9092").contains("kafka://BROKERS"));
        assertTrue(serveUsageError("--fleet", "kafka://h:9092", "--session-timeout", "500ms").contains("at least 1s"));
        assertTrue(serveUsageError("--fleet", "kafka://h:9092", "--no-streams").contains("--no-streams"));
        assertTrue(new ServeCommand().usage().contains("--fleet kafka://"));
    }
}
