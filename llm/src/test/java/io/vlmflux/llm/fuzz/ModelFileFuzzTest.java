package io.vlmflux.llm.fuzz;

import io.vlmflux.vision.fuzz.JsonMutator;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.Fixtures;
import io.vlmflux.llm.GenerationConfig;
import io.vlmflux.llm.Models;
import io.vlmflux.llm.tokenizer.Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Seeded fuzzing of the files a model folder holds (tiny-qwen2 fixture): mutants of the safetensors header (JSON
 * mutations plus raw byte damage: header length, truncation, flipped bytes), config.json, generation_config.json and
 * tokenizer.json are loaded in-process, each within {@link #PER_MUTANT_S} s. A mutant may load, or fail with an
 * IllegalArgumentException / IllegalStateException / IOException whose message names the file and, when the mutation
 * changed one field, that field (the tensor, for safetensors). Anything else (NPE, arithmetic or index errors,
 * OutOfMemoryError, a hang) fails the test. {@code -Dvlmflux.fuzz.mutants=N} (default 200 per kind) and
 * {@code -Dvlmflux.fuzz.seed=S} select the run.
 */
class ModelFileFuzzTest {
    static final int MUTANTS = Integer.getInteger("vlmflux.fuzz.mutants", 200);
    static final long SEED = Long.getLong("vlmflux.fuzz.seed", 20260904L);
    static final int PER_MUTANT_S = 20;
    private static final ObjectMapper JSON = new ObjectMapper();
    private static ExecutorService exec;
    private static Path base;

    @BeforeAll static void setUp() throws IOException {
        exec = Executors.newSingleThreadExecutor(r -> { Thread t = new Thread(r, "fuzz"); t.setDaemon(true); return t; });
        base = Files.createTempDirectory("vlmflux-fuzz");
        try (var s = Files.list(Fixtures.dir("tiny-qwen2"))) {
            for (Path p : s.toList()) if (!p.getFileName().toString().startsWith("golden")) Files.copy(p, base.resolve(p.getFileName()));
        }
    }

    @AfterAll static void tearDown() throws IOException {
        exec.shutdownNow();
        try (var s = Files.walk(base)) { s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete()); }
    }

    interface Load { void run() throws Exception; }

    @ParameterizedTest
    @ValueSource(strings = {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"})
    void mutantsFailCleanlyNamingFileAndField(String file) throws Exception {
        Path target = base.resolve(file);
        byte[] original = Files.readAllBytes(target);
        Random r = new Random(SEED ^ file.hashCode());
        List<String> failures = new ArrayList<>();
        int loaded = 0, rejected = 0;
        long t0 = System.nanoTime();
        try {
            for (int i = 0; i < MUTANTS; i++) {
                String field;
                String what;
                byte[] bytes;
                if (file.endsWith(".safetensors")) {
                    var m = mutateSafetensors(original, r);
                    bytes = m.bytes; field = m.field; what = m.what;
                } else {
                    JsonMutator.Mutant m = JsonMutator.mutate(JSON.readTree(original), r);
                    bytes = JSON.writeValueAsBytes(m.root());
                    field = m.field(); what = m.description();
                    if (r.nextInt(20) == 0) {   // raw damage: cut the text short
                        bytes = Arrays.copyOf(bytes, r.nextInt(bytes.length));
                        field = null; what = "truncated to " + bytes.length + " bytes";
                    }
                }
                Files.write(target, bytes);
                String outcome = check(file, field, () -> load(file));
                if (outcome == null) loaded++;
                else if (outcome.isEmpty()) rejected++;
                else if (failures.size() < 25) failures.add("#" + i + " " + what + ": " + outcome);
                else failures.add("...");
                if (outcome != null && !outcome.isEmpty() && outcome.startsWith("HANG")) break;
            }
        } finally {
            Files.write(target, original);
        }
        System.out.printf("fuzz %s: %d mutants (seed %d): %d loaded, %d rejected cleanly, %d failures, %.1f s%n", file, MUTANTS, SEED,
                loaded, rejected, failures.size(), (System.nanoTime() - t0) / 1e9);
        assertEquals(List.of(), failures.stream().distinct().limit(26).toList(), file + " mutants");
    }

    private static void load(String file) throws Exception {
        switch (file) {
            case "generation_config.json" -> GenerationConfig.load(base).toSampling(1);
            case "tokenizer.json" -> {
                Tokenizer t = Tokenizer.load(base);
                t.decode(t.encode("Hello world, <|im_start|>user héllo 123"));
            }
            default -> Models.load(base, "cpu").close();
        }
    }

    /** null: loaded; "": rejected cleanly; otherwise what was wrong. */
    private static String check(String file, String field, Load load) {
        Future<?> f = exec.submit(() -> { load.run(); return null; });
        try {
            f.get(PER_MUTANT_S, TimeUnit.SECONDS);
            return null;
        } catch (TimeoutException e) {
            f.cancel(true);
            return "HANG: no result within " + PER_MUTANT_S + " s";
        } catch (InterruptedException e) {
            throw new AssertionError(e);
        } catch (java.util.concurrent.ExecutionException ee) {
            Throwable t = ee.getCause();
            if (!(t instanceof IllegalArgumentException || t instanceof IllegalStateException || t instanceof IOException
                    || t instanceof UncheckedIOException))
                return "unclean " + t + (t.getStackTrace().length > 0 ? " at " + t.getStackTrace()[0] : "");
            String msg = String.valueOf(t.getMessage());
            if (!msg.contains(file)) return "message does not name " + file + ": " + msg;
            if (field != null && !msg.contains(field)) return "message does not name the field '" + field + "': " + msg;
            return "";
        }
    }

    private record Bytes(byte[] bytes, String field, String what) {}

    /** A header-JSON mutant (field: the tensor's name, or __metadata__) or a raw-byte one (no field). */
    private static Bytes mutateSafetensors(byte[] original, Random r) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(original).order(ByteOrder.LITTLE_ENDIAN);
        int n = (int) b.getLong(0);
        byte[] data = Arrays.copyOfRange(original, 8 + n, original.length);
        int kind = r.nextInt(10);
        if (kind < 7) {
            JsonNode header = JSON.readTree(new String(original, 8, n, StandardCharsets.UTF_8));
            JsonMutator.Mutant m = mutateHeader(header, r);
            byte[] h = JSON.writeValueAsBytes(m.root());
            ByteBuffer out = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
            out.putLong(h.length).put(h).put(data);
            return new Bytes(out.array(), m.field(), m.description());
        }
        byte[] c = original.clone();
        return switch (kind) {
            case 7 -> {
                long len = switch (r.nextInt(4)) { case 0 -> -1L; case 1 -> 0L; case 2 -> (long) n + 1 + r.nextInt(1000); default -> r.nextLong(); };
                ByteBuffer.wrap(c).order(ByteOrder.LITTLE_ENDIAN).putLong(0, len);
                yield new Bytes(c, null, "header length " + len);
            }
            case 8 -> {
                int cut = r.nextInt(original.length);
                yield new Bytes(Arrays.copyOf(original, cut), null, "truncated at " + cut);
            }
            default -> {
                int at = 8 + r.nextInt(n);
                c[at] = (byte) r.nextInt(256);
                yield new Bytes(c, null, "header byte " + at + " = " + (c[at] & 0xff));
            }
        };
    }

    /** Mutates one tensor entry (or the metadata); the field to name is the tensor. */
    private static JsonMutator.Mutant mutateHeader(JsonNode header, Random r) {
        List<String> names = new ArrayList<>();
        header.fieldNames().forEachRemaining(names::add);
        String tensor = names.get(r.nextInt(names.size()));
        com.fasterxml.jackson.databind.node.ObjectNode root = (com.fasterxml.jackson.databind.node.ObjectNode) header.deepCopy();
        JsonMutator.Mutant m = JsonMutator.mutate(root.get(tensor), r);
        if (m.field() == null && !m.root().isObject() && r.nextBoolean()) {
            root.remove(tensor);
            return new JsonMutator.Mutant(root, tensor, tensor + " deleted");
        }
        root.set(tensor, m.root());
        return new JsonMutator.Mutant(root, tensor, tensor + m.description());
    }
}
