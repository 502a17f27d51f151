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
    public GenerationConfig {
        eosTokenIds = List.copyOf(eosTokenIds);
        if (doSample) {   // the values a sampler would use; checked here so the error names the file and field
            if (!(temperature >= 0)) throw new IllegalArgumentException("field 'temperature' must be >= 0, got " + temperature);
            if (topK < 0) throw new IllegalArgumentException("field 'top_k' must be >= 0, got " + topK);
            if (!(topP > 0 && topP <= 1)) throw new IllegalArgumentException("field 'top_p' must be in (0, 1], got " + topP);
            if (!(minP >= 0 && minP <= 1)) throw new IllegalArgumentException("field 'min_p' must be in [0, 1], got " + minP);
        }
        if (!(repetitionPenalty > 0)) throw new IllegalArgumentException("field 'repetition_penalty' must be > 0, got " + repetitionPenalty);
    }

    public static GenerationConfig defaults() { return new GenerationConfig(false, 1.0, 50, 1.0, 0.0, 1.0, List.of()); }

    /** The sampling settings transformers would use: greedy unless {@code do_sample}. */
    public SamplingParams toSampling(long seed) {
        if (!doSample || temperature < SamplingParams.GREEDY_BELOW) return SamplingParams.greedyDecoding().withRepetitionPenalty(repetitionPenalty);
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
        try {
            if (n == null || !n.isObject()) throw new IllegalArgumentException("must be a JSON object");
            List<Integer> eos = ModelConfig.tokenIds(n.get("eos_token_id"), "eos_token_id");
            for (int id : eos) if (id < 0) throw new IllegalArgumentException("field 'eos_token_id' must hold ids >= 0, got " + id);
            boolean doSample = n.hasNonNull("do_sample") && ModelConfig.bool(n.get("do_sample"), "do_sample");
            int topK = n.hasNonNull("top_k") ? ModelConfig.strictInt(n.get("top_k"), "top_k") : 50;
            return new GenerationConfig(doSample, num(n, "temperature", 1.0),
                    topK, num(n, "top_p", 1.0), num(n, "min_p", 0.0), num(n, "repetition_penalty", 1.0), eos);
        } catch (IllegalArgumentException ex) {
            throw new IllegalArgumentException(f + ": " + ex.getMessage(), ex);
        }
    }

    private static double num(JsonNode n, String k, double d) {
        JsonNode v = n.get(k);
        if (v == null || v.isNull()) return d;
        if (!v.isNumber() || !Double.isFinite(v.asDouble())) throw new IllegalArgumentException("field '" + k + "' must be a finite number, got " + v);
        return v.asDouble();
    }
}
