package io.vlmflux.cuda.safetensors;

import java.util.Locale;

/**
 * Progress of a long model load on the {@code vlmflux.weights} logger: nothing for a load that ends within a second;
 * after the first second a line every few seconds ({@code loading weights of DIR: 1200 / 6100 MiB (19%), ...}), then a
 * summary line. One per load; not thread-safe (a load runs on one thread).
 */
public final class LoadProgress {
    private static final System.Logger LOG = System.getLogger("vlmflux.weights");
    private static final long FIRST_NANOS = 1_000_000_000L, EVERY_NANOS = 5_000_000_000L;

    private final String what;
    private final long total;
    private final java.util.function.LongSupplier clock;
    private final long t0;
    private long done, lastLog;
    private boolean logged;

    /** @param what e.g. {@code "loading weights of /models/x"} or {@code "uploading weights of /models/x to cuda:0"} */
    public LoadProgress(String what, long totalBytes) { this(what, totalBytes, System::nanoTime); }

    LoadProgress(String what, long totalBytes, java.util.function.LongSupplier nanoClock) {
        this.what = what;
        this.total = Math.max(0, totalBytes);
        this.clock = nanoClock;
        this.t0 = nanoClock.getAsLong();
        this.lastLog = t0 - EVERY_NANOS;   // the first line comes right after the first second
    }

    /** {@code bytes} more are done; {@code detail} (may be empty) says where, e.g. {@code "file 2 of 4"}. */
    public void advance(long bytes, String detail) {
        done += bytes;
        long now = clock.getAsLong();
        if (now - t0 > FIRST_NANOS && now - lastLog > EVERY_NANOS && done < total) {
            lastLog = now;
            logged = true;
            LOG.log(System.Logger.Level.INFO, "{0}: {1} / {2} MiB ({3}%){4}", what, String.valueOf(done >> 20), String.valueOf(total >> 20),
                    String.valueOf(total == 0 ? 100 : done * 100 / total), detail.isEmpty() ? "" : ", " + detail);
        }
    }

    /** The summary line, when progress was shown. */
    public void finish() {
        long now = clock.getAsLong();
        if (logged || now - t0 > FIRST_NANOS)
            LOG.log(System.Logger.Level.INFO, "{0}: {1} MiB done in {2} s", what, String.valueOf(done >> 20), String.format(Locale.ROOT, "%.1f", (now - t0) / 1e9));
    }
}
