package io.vlmflux.demos.serve;

import io.vlmflux.sources.Frame;
import io.vlmflux.sources.FrameSource;
import io.vlmflux.sources.SourceEvent;
import io.vlmflux.sources.SourceStats;
import reactor.core.publisher.Flux;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A real source whose frames are counted while open: each frame is handed on as a frame over the same pixels whose
 * close closes the original and counts, so a test can check that every frame the server took was closed.
 */
final class TrackedSource implements FrameSource {
    private final FrameSource inner;
    final AtomicLong open = new AtomicLong(), total = new AtomicLong();

    TrackedSource(FrameSource inner) { this.inner = inner; }

    @Override public String id() { return inner.id(); }
    @Override public boolean isLive() { return inner.isLive(); }
    @Override public SourceStats stats() { return inner.stats(); }
    @Override public Flux<SourceEvent> events() { return inner.events(); }
    @Override public Flux<Frame> frames() {
        return inner.frames().map(f -> {
            open.incrementAndGet();
            total.incrementAndGet();
            long[] offsets = new long[f.planeCount()];
            int[] strides = new int[f.planeCount()];
            for (int p = 0; p < offsets.length; p++) { offsets[p] = f.planeOffset(p); strides[p] = f.stride(p); }
            return Frame.builder().format(f.format()).size(f.width(), f.height()).planeOffsets(offsets).strides(strides).data(f.data())
                    .pts(f.ptsNanos()).sequence(f.sequence()).sourceId(f.sourceId()).colorimetry(f.colorimetry()).label(f.label())
                    .releaser(() -> { f.close(); open.decrementAndGet(); }).build();
        });
    }
}
