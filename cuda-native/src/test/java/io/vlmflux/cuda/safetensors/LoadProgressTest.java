package io.vlmflux.cuda.safetensors;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.junit.jupiter.api.Assertions.*;

/** Load progress on a virtual clock: silent for a fast load, periodic byte counts and a summary for a slow one. */
class LoadProgressTest {
    final List<String> lines = new CopyOnWriteArrayList<>();
    final Logger jul = Logger.getLogger("vlmflux.weights");
    final Handler h = new Handler() {
        @Override public void publish(LogRecord r) { lines.add(java.text.MessageFormat.format(r.getMessage(), r.getParameters())); }
        @Override public void flush() {}
        @Override public void close() {}
    };

    @BeforeEach void attach() { jul.addHandler(h); }
    @AfterEach void detach() { jul.removeHandler(h); }

    @Test void aLoadUnderASecondSaysNothing() {
        long[] now = {0};
        LoadProgress p = new LoadProgress("loading weights of /m", 100L << 20, () -> now[0]);
        for (int i = 0; i < 10; i++) { now[0] += 50_000_000L; p.advance(10L << 20, "file 1 of 1"); }
        p.finish();
        assertEquals(List.of(), lines);
    }

    @Test void aSlowLoadReportsBytesEveryFewSecondsThenASummary() {
        long[] now = {0};
        LoadProgress p = new LoadProgress("loading weights of /m", 1000L << 20, () -> now[0]);
        for (int i = 0; i < 100; i++) { now[0] += 200_000_000L; p.advance(10L << 20, "file " + (i / 50 + 1) + " of 2"); }   // 20 s
        p.finish();
        assertTrue(lines.size() >= 4 && lines.size() <= 6, lines.toString());   // at ~1.2, 6.2, 11.2, 16.2 s, then the summary
        assertTrue(lines.get(0).startsWith("loading weights of /m: 60 / 1000 MiB (6%), file 1 of 2"), lines.get(0));
        assertTrue(lines.getLast().contains("1000 MiB done in 20.0 s"), lines.getLast());
    }
}
