package io.vlmflux.llm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code generation_config.json}: the sampling defaults a checkpoint ships with. Missing fields take transformers'
 * defaults (do_sample false, temperature 1, top_k 50, top_p 1, no min_p, repetition_penalty 1).
 */
public record GenerationConfig(boolean doSample, double temperature, int topK, double topP, double minP,
                               double repetitionPenalty, List<Integer> eosTokenIds) {
    public GenerationConfig { eosTokenIds = List.copyOf(eosTokenIds); }

    public static GenerationConfig defaults() { return new GenerationConfig(false, 1.0, 50, 1.0, 0.0, 1.0, List.of()); }

    /** The sampling settings transformers would use: greedy unless {@code do_sample}. */
    public SamplingParams toSampling(long seed) {
        if (!doSample) return SamplingParams.greedyDecoding().withRepetitionPenalty(repetitionPenalty);
        return new SamplingParams(false, temperature, topK, topP, minP, repetitionPenalty, seed);
    }

    /** Reads {@code dir/generation_config.json}, or defaults when absent. */
    public static GenerationConfig load(Path dir) throws IOException {
        Path f = dir.resolve("generation_config.json");
        if (!Files.isRegularFile(f)) return defaults();
        JsonNode n;
        try {
            n = new ObjectMapper().readTree(f.toFile());
        } catch (IOException e) {
            throw new IOException(f + ": not valid JSON: " + e.getMessage(), e);
        }
        List<Integer> eos = new ArrayList<>();
        JsonNode e = n.path("eos_token_id");
        if (e.isArray()) for (JsonNode x : e) eos.add(x.asInt());
        else if (e.isNumber()) eos.add(e.asInt());
        try {
            return new GenerationConfig(n.path("do_sample").asBoolean(false), num(n, "temperature", 1.0),
                    (int) num(n, "top_k", 50), num(n, "top_p", 1.0), num(n, "min_p", 0.0), num(n, "repetition_penalty", 1.0), eos);
        } catch (IllegalArgumentException ex) {
            throw new IllegalArgumentException(f + ": " + ex.getMessage(), ex);
        }
    }

    private static double num(JsonNode n, String k, double d) {
        JsonNode v = n.get(k);
        if (v == null || v.isNull()) return d;
        if (!v.isNumber()) throw new IllegalArgumentException("field '" + k + "' must be a number, got " + v);
        return v.asDouble();
    }
}
