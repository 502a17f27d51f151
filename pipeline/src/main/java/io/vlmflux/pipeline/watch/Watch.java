package io.vlmflux.pipeline.watch;

/**
 * One watched question, as the watch operator sees it: a name for its events and the policy that turns answers into
 * events. What is asked (the question, the answer's constraint) belongs to the {@link Answerer}.
 */
public record Watch(String name, WatchPolicy policy) {
    public Watch {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("watch name must not be blank, got '" + name + "'");
        if (policy == null) policy = WatchPolicy.DEFAULT;
    }
}
