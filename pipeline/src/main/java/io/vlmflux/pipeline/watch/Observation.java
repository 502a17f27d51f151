package io.vlmflux.pipeline.watch;

/**
 * One answer to one watched question about one input, or why there is none.
 *
 * @param answer  the answer text (null when failed)
 * @param logprob the answer's log-probability (sum over its tokens; NaN when unknown)
 * @param error   why answering failed, or null
 */
public record Observation(String answer, double logprob, String error) {
    public Observation {
        if ((answer == null) == (error == null)) throw new IllegalArgumentException("an observation has an answer or an error, not both or neither");
    }

    public static Observation of(String answer, double logprob) { return new Observation(answer, logprob, null); }

    public static Observation failed(String error) { return new Observation(null, Double.NaN, error == null ? "unknown error" : error); }

    public boolean failed() { return error != null; }
}
