package io.vlmflux.demos;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The weights file of a running CPU generation is truncated in place (what {@code cp new old} or
 * {@code rsync --inplace} does): the child JVM must finish correctly or fail with a clear error, never die of SIGBUS
 * (no exit 134, no hs_err file).
 */
class WeightsTruncatedTest {
    @TempDir Path dir;

    private static String drain(InputStream in, ByteArrayOutputStream buf) {
        try {
            byte[] b = new byte[4096];
            for (int r; (r = in.read(b)) >= 0; ) synchronized (buf) { buf.write(b, 0, r); }
        } catch (IOException ignored) { /* process gone */ }
        return null;
    }

    @Test void truncatingWeightsUnderARunningCpuGenerationDoesNotCrashTheJvm() throws Exception {
        Path model = dir.resolve("model");
        Files.createDirectories(model);
        Path src = Path.of(System.getProperty("vlmflux.root", "..")).resolve("demos/models/shapes-vl");
        try (var s = Files.list(src)) { for (Path p : s.toList()) Files.copy(p, model.resolve(p.getFileName())); }
        Path work = Files.createDirectories(dir.resolve("work"));
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "--add-modules", "jdk.incubator.vector", "-Xmx1g",
                "-XX:ErrorFile=" + work.resolve("hs_err_pid%p.log"),
                "-cp", System.getProperty("java.class.path"), "io.vlmflux.demos.Main", "generate",
                "--model", model.toString(), "--backend", "cpu", "--raw", "--prompt", "a red circle", "--greedy", "--ignore-eos",
                "--max-tokens", "1900");
        Process p = new ProcessBuilder(cmd).directory(work.toFile()).start();
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        Thread to = Thread.ofPlatform().daemon().start(() -> drain(p.getInputStream(), out));
        Thread te = Thread.ofPlatform().daemon().start(() -> drain(p.getErrorStream(), err));
        try {
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (true) {   // wait until tokens stream out: the model is loaded and decoding
                synchronized (out) { if (out.size() > 20) break; }
                assertTrue(p.isAlive(), "child exited before generating; stderr: " + err);
                assertTrue(System.nanoTime() < end, "no output within 120 s; stderr: " + err);
                Thread.sleep(5);
            }
            boolean aliveAtTruncation = p.isAlive();
            try (RandomAccessFile f = new RandomAccessFile(model.resolve("model.safetensors").toFile(), "rw")) { f.setLength(64); }
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "child did not finish; stderr: " + err);
            to.join(10_000);
            te.join(10_000);
            String stderr;
            synchronized (err) { stderr = err.toString(StandardCharsets.UTF_8); }
            try (var s = Files.list(work)) {
                assertEquals(List.of(), s.filter(f -> f.getFileName().toString().startsWith("hs_err")).toList(), "JVM crashed; stderr: " + stderr);
            }
            assertNotEquals(134, p.exitValue(), stderr);
            assertTrue(aliveAtTruncation, "generation ended before the file was truncated: the test proved nothing");
            assertEquals(0, p.exitValue(), "a run whose weights are in memory must complete; stderr: " + stderr);
            synchronized (out) { assertTrue(out.size() > 100, "output: " + out); }
        } finally {
            p.destroyForcibly();
        }
    }
}
