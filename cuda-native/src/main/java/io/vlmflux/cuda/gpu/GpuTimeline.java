package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.global.cudart;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Where a sequence of work enqueued on one stream spends its GPU time: a timing event at the start and after each
 * labelled piece ({@link #mark}), nothing synchronized in between, so the pieces run as they would unprofiled (launch
 * gaps included, attributed to the piece that follows them). {@link #totals} waits for the last event and sums the time
 * between consecutive events per label. Not for graph capture (events recorded in a capture are not timed). Not
 * thread-safe: the stream's owner uses it.
 */
public final class GpuTimeline implements AutoCloseable {
    private final GpuStream stream;
    private final List<CUevent_st> events = new ArrayList<>();
    private final List<String> labels = new ArrayList<>();
    private boolean closed;

    /** Starts the timeline at the work enqueued on {@code stream} so far. */
    public GpuTimeline(GpuStream stream) {
        this.stream = stream;
        record(null);
    }

    /** The work enqueued since the previous mark (or the start) is {@code label}'s. */
    public void mark(String label) {
        if (closed) throw new IllegalStateException("timeline closed");
        record(label);
    }

    private void record(String label) {
        CUevent_st e = new CUevent_st();
        Cuda.check(cudart.cudaEventCreate(e), "cudaEventCreate");
        events.add(e);
        labels.add(label);
        Cuda.check(cudart.cudaEventRecord(e, stream.handle()), "cudaEventRecord");
    }

    /** Waits for the work marked so far; per label, in the order first marked: {milliseconds, pieces}. */
    public Map<String, double[]> totals() {
        if (closed) throw new IllegalStateException("timeline closed");
        Map<String, double[]> t = new LinkedHashMap<>();
        Cuda.check(cudart.cudaEventSynchronize(events.getLast()), "cudaEventSynchronize");
        float[] ms = {0};
        for (int i = 1; i < events.size(); i++) {
            Cuda.check(cudart.cudaEventElapsedTime(ms, events.get(i - 1), events.get(i)), "cudaEventElapsedTime");
            double[] v = t.computeIfAbsent(labels.get(i), k -> new double[2]);
            v[0] += ms[0];
            v[1] += 1;
        }
        return t;
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        for (CUevent_st e : events) cudart.cudaEventDestroy(e);
        events.clear();
    }
}
