package io.vlmflux.demos;

import java.time.Duration;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Waiting for a condition whose state lives in another thread, process or broker: polls it until it holds, and fails
 * with {@code what} when it does not within {@code max} — a deadline, never a sleep that hopes.
 */
public final class Await {
    private Await() {}

    /** Polls {@code condition} every 10 ms for at most {@code max}. */
    public static void until(Duration max, String what, BooleanSupplier condition) throws InterruptedException {
        until(max, Duration.ofMillis(10), what, condition);
    }

    /** Polls {@code condition} every {@code poll} (longer for conditions that cost a request) for at most {@code max}. */
    public static void until(Duration max, Duration poll, String what, BooleanSupplier condition) throws InterruptedException {
        long end = System.nanoTime() + max.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > end) fail("timed out after " + max.toMillis() / 1000.0 + " s waiting for " + what);
            Thread.sleep(poll.toMillis());
        }
    }
}
