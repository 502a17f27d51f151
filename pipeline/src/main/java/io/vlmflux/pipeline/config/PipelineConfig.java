package io.vlmflux.pipeline.config;

import com.fasterxml.jackson.core.JsonLocation;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.exc.UnrecognizedPropertyException;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;

/**
 * A whole pipeline as a JSON file ({@code configs/*.json}): sources, sampling, model, prompt and output. Immutable
 * and validated on construction; missing optional fields take the defaults named on each record. Load with
 * {@link #load(Path)}, whose errors name the file, the JSON path and what was wrong.
 *
 * @param sources    at least one source
 * @param sampling   frame selection and fan-in; default: every frame, one buffered frame per source
 * @param model      the model folder and backend
 * @param prompt     the question asked about each frame; default "Describe the image."
 * @param maxTokens  generation limit per frame, in [1, 4096]; default 64
 * @param generation decoding settings; default: the model's generation_config.json
 * @param output     caption output; default text on stdout
 * @param constraint what each caption must look like, as JSON ({@code {"choice": [...]}}, {@code {"regex": "..."}},
 *                   {@code {"json_schema": {...}}}, {@code {"grammar": "..."}}: {@code ConstraintSpec.fromJson}); checked against the model's tokenizer when the pipeline starts;
 *                   default free text
 * @param alerts     questions watched on every sampled frame, events when their answers change (instead of captions);
 *                   default none
 */
public record PipelineConfig(List<SourceConfig> sources, SamplingConfig sampling, ModelConfig model, String prompt,
                             Integer maxTokens, GenerationSettings generation, OutputConfig output,
                             com.fasterxml.jackson.databind.JsonNode constraint, List<AlertConfig> alerts) {
    public static final String DEFAULT_PROMPT = "Describe the image.";

    static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_NULL_FOR_PRIMITIVES)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    public PipelineConfig {
        if (sources == null || sources.isEmpty()) throw new IllegalArgumentException("field 'sources' must list at least one source");
        for (int i = 0; i < sources.size(); i++)
            if (sources.get(i) == null) throw new IllegalArgumentException("field 'sources': entry " + i + " is null");
        sources = List.copyOf(sources);
        HashSet<String> ids = new HashSet<>();
        for (SourceConfig s : sources)
            if (s.id() != null && !ids.add(s.id())) throw new IllegalArgumentException("field 'sources': duplicate id '" + s.id() + "'");
        if (sampling == null) sampling = SamplingConfig.DEFAULT;
        if (model == null) throw new IllegalArgumentException("field 'model' is required (e.g. {\"dir\": \"demos/models/shapes-vl\"})");
        if (prompt == null) prompt = DEFAULT_PROMPT;
        if (prompt.isBlank()) throw new IllegalArgumentException("field 'prompt' must not be blank");
        if (maxTokens == null) maxTokens = 64;
        if (maxTokens < 1 || maxTokens > 4096) throw new IllegalArgumentException("field 'maxTokens' must be in [1, 4096], got " + maxTokens);
        if (generation == null) generation = GenerationSettings.MODEL_DEFAULTS;
        if (output == null) output = OutputConfig.DEFAULT;
        if (constraint != null && constraint.isNull()) constraint = null;
        if (constraint != null && !constraint.isObject())
            throw new IllegalArgumentException("field 'constraint' must be an object such as {\"choice\": [\"yes\", \"no\"]}, got " + constraint);
        if (alerts == null) alerts = List.of();
        for (int i = 0; i < alerts.size(); i++)
            if (alerts.get(i) == null) throw new IllegalArgumentException("field 'alerts': entry " + i + " is null");
        alerts = List.copyOf(alerts);
        try {
            AlertConfig.checkNames(alerts);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("field 'alerts': " + e.getMessage(), e);
        }
    }


    /** Reads and validates a config file; a {@link ConfigException}'s message names the file, the JSON path and line. */
    public static PipelineConfig load(Path file) {
        String json;
        try {
            json = Files.readString(file);
        } catch (NoSuchFileException e) {
            throw new ConfigException("pipeline config " + file + " does not exist", null);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read pipeline config " + file + ": " + e.getMessage(), e);
        }
        return parse(json, file.toString());
    }

    /** Parses config JSON; {@code origin} (a file name) prefixes error messages. */
    public static PipelineConfig parse(String json, String origin) {
        try {
            PipelineConfig c = MAPPER.readValue(json, PipelineConfig.class);
            if (c == null) throw new ConfigException(origin + ": empty config (expected a JSON object)", null);
            return c;
        } catch (JsonMappingException e) {
            throw new ConfigException(origin + ": " + where(e) + ": " + reason(e), e);
        } catch (JsonProcessingException e) {
            throw new ConfigException(origin + ": malformed JSON" + at(e.getLocation()) + ": " + e.getOriginalMessage(), e);
        }
    }

    /** {@code $.sources[1].every} from Jackson's reference chain. */
    static String where(JsonMappingException e) {
        StringBuilder sb = new StringBuilder("$");
        for (JsonMappingException.Reference r : e.getPath()) {
            if (r.getFieldName() != null) sb.append('.').append(r.getFieldName());
            else if (r.getIndex() >= 0) sb.append('[').append(r.getIndex()).append(']');
        }
        return sb + at(e.getLocation());
    }

    private static String at(JsonLocation loc) {
        return loc == null || loc.getLineNr() < 0 ? "" : " (line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ")";
    }

    static String reason(JsonMappingException e) {
        if (e instanceof UnrecognizedPropertyException u)
            return "unknown field '" + u.getPropertyName() + "' (known: " + u.getKnownPropertyIds() + ")";
        Throwable c = e.getCause();
        // A record constructor threw: its message names the field and the value.
        if (c instanceof IllegalArgumentException) return c.getMessage();
        return e.getOriginalMessage();
    }
}
