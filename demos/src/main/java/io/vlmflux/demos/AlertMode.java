package io.vlmflux.demos;

import com.fasterxml.jackson.databind.JsonNode;
import io.vlmflux.llm.constrain.ConstraintException;
import io.vlmflux.llm.constrain.ConstraintSpec;
import io.vlmflux.llm.runtime.VlmRuntime;
import io.vlmflux.pipeline.config.AlertConfig;
import io.vlmflux.pipeline.config.PipelineConfig;
import io.vlmflux.pipeline.caption.Alert;
import io.vlmflux.pipeline.watch.WatchPolicy;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code vlmflux caption --alert "QUESTION? yes|no"} (repeatable) and a config's {@code alerts}: instead of captions,
 * each sampled frame is asked every alert's question (one vision encoding per frame) and an event is printed when an
 * answer changes. The policy flags apply to every {@code --alert}.
 */
final class AlertMode {
    static final List<String> OPTIONS = List.of("alert", "alert-agree", "alert-debounce", "alert-min-interval", "alert-max-interval");

    private AlertMode() {}

    static final String USAGE = """
                  --alert "Q? A|B"  instead of captions, ask Q about every sampled frame (answer one of A, B, ...; "Q? /RE/": a
                                    regex; "Q?": free text) and print an event when the answer changes (repeatable: all
                                    alerts share each frame's vision encoding). Text lines, or JSON objects with --json:
                                    {event: alert, watch, source, kind: changed|repeated|stalled|error, answer, previous,
                                    logprob, confidence, evidence: [{sequence, ptsMillis, answer, logprob}], atMillis, error}
                  --alert-agree K   answers in a row that must agree before a change (default 2)
                  --alert-debounce D, --alert-min-interval D, --alert-max-interval D
                                    a new answer must hold D; at most / at least one event per D (docs/pipeline.md)""";

    /** The alerts of the flags, else of the config; empty when none. Errors are usage errors naming the flag or field. */
    static List<Alert> alerts(Args a, PipelineConfig config) {
        List<Alert> out = new ArrayList<>();
        if (a.has("alert")) {
            WatchPolicy p;
            try {
                p = new WatchPolicy(a.getInt("alert-agree", WatchPolicy.DEFAULT.agree()), a.getDuration("alert-debounce"),
                        a.getDuration("alert-min-interval"), a.getDuration("alert-max-interval"));
            } catch (IllegalArgumentException e) {
                throw new UsageException("--alert-*: " + e.getMessage());
            }
            for (String s : a.all("alert")) {
                try {
                    out.add(Alert.parse(s, p));
                } catch (IllegalArgumentException e) {
                    throw new UsageException("--alert: " + e.getMessage());
                }
            }
        } else if (OPTIONS.stream().skip(1).anyMatch(a::has)) {
            throw new UsageException("--alert-agree/--alert-debounce/--alert-min-interval/--alert-max-interval need --alert");
        } else if (config != null) {
            for (int i = 0; i < config.alerts().size(); i++) {
                AlertConfig c = config.alerts().get(i);
                String where = "alerts[" + i + "]";
                try {
                    out.add(io.vlmflux.pipeline.caption.Alert.of(c));
                } catch (IllegalArgumentException e) {
                    throw new UsageException("config " + where + ": " + e.getMessage());
                }
            }
        }
        return out;
    }

    /** A constraint object of a config ({@link ConstraintSpec#fromJson}); errors name {@code where}. */
    static ConstraintSpec constraint(JsonNode n, String where) {
        try {
            return ConstraintSpec.fromJson(n);
        } catch (ConstraintException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
        }
    }

    /** Compiles every alert's constraint now, so a bad one is a usage error before any frame is read. */
    static void check(VlmRuntime model, List<Alert> alerts) {
        for (Alert al : alerts) {
            try {
                model.controls(al.constraint(), 0);
            } catch (ConstraintException e) {
                throw new UsageException("alert '" + al.name() + "': " + e.getMessage());
            }
        }
    }

    static String describe(Duration d) { return d == null ? "-" : d.toString(); }
}
