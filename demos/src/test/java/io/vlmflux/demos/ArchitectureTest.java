package io.vlmflux.demos;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The module rules of docs (DESIGN "The runtime"), checked on the sources: everything above the runtime talks to
 * {@code io.vlmflux.llm.runtime.VlmRuntime} only, never to the CUDA classes; sources and the pipeline's operators
 * know nothing of models. A violation names the file, line and import.
 */
class ArchitectureTest {
    static final Path ROOT = Path.of(System.getProperty("vlmflux.root", "..")).toAbsolutePath().normalize();
    static final Pattern CUDA = Pattern.compile("^\\s*import\\s+(static\\s+)?io\\.vlmflux\\.(cuda|vision\\.cuda|llm\\.cuda)\\b");
    static final Pattern MODEL = Pattern.compile("^\\s*import\\s+(static\\s+)?io\\.vlmflux\\.(llm|vision)\\b");
    /** Fully qualified uses in code (not only imports) count too. */
    static final Pattern CUDA_FQN = Pattern.compile("\\bio\\.vlmflux\\.(cuda|vision\\.cuda|llm\\.cuda)\\.[A-Za-z]");

    @Test void pipelineAndApplicationNeverTouchCudaClasses() throws IOException {
        List<String> bad = new ArrayList<>();
        for (String dir : List.of("pipeline/src/main", "demos/src/main")) bad.addAll(violations(ROOT.resolve(dir), CUDA, true));
        assertEquals(List.of(), bad, "pipeline and demos talk to the runtime, not to io.vlmflux.cuda / vision.cuda / llm.cuda");
    }

    @Test void sourcesAndPipelineOperatorsNeverImportModels() throws IOException {
        List<String> bad = new ArrayList<>(violations(ROOT.resolve("sources/src/main"), MODEL, false));
        Path pipeline = ROOT.resolve("pipeline/src/main/java/io/vlmflux/pipeline");
        try (Stream<Path> files = Files.walk(pipeline)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                Path rel = pipeline.relativize(f);
                // the caption stage, live video and the two facades (Stages, VlmPipeline) are where models meet frames
                if (rel.startsWith("caption") || rel.startsWith("live") || rel.toString().equals("Stages.java") || rel.toString().equals("VlmPipeline.java")) continue;
                bad.addAll(scan(f, MODEL, false));
            }
        }
        assertEquals(List.of(), bad, "sources and pipeline operators must not depend on llm or vision");
    }

    @Test void theRuleCatchesAViolation(@org.junit.jupiter.api.io.TempDir Path tmp) throws IOException {
        Path f = tmp.resolve("X.java");
        Files.writeString(f, "package x;\nimport io.vlmflux.llm.cuda.CudaDecoder;\nclass X { Object o = io.vlmflux.cuda.gpu.Gpu.device(); }\n");
        List<String> v = violations(tmp, CUDA, true);
        assertEquals(2, v.size(), v.toString());
        assertTrue(v.get(0).contains("X.java:2"), v.toString());
    }

    static List<String> violations(Path dir, Pattern p, boolean fqn) throws IOException {
        assertTrue(Files.isDirectory(dir), dir + " is not a folder (set -Dvlmflux.root to the checkout)");
        List<String> out = new ArrayList<>();
        try (Stream<Path> files = Files.walk(dir)) {
            for (Path f : files.filter(x -> x.toString().endsWith(".java")).sorted().toList()) out.addAll(scan(f, p, fqn));
        }
        return out;
    }

    static List<String> scan(Path f, Pattern p, boolean fqn) throws IOException {
        List<String> out = new ArrayList<>();
        List<String> lines = Files.readAllLines(f);
        for (int i = 0; i < lines.size(); i++) {
            String l = lines.get(i);
            if (p.matcher(l).find() || (fqn && !l.trim().startsWith("import") && !l.trim().startsWith("*") && !l.trim().startsWith("//")
                    && CUDA_FQN.matcher(l).find()))
                out.add(f.getFileName() + ":" + (i + 1) + ": " + l.trim());
        }
        return out;
    }
}
