package io.vlmflux.llm;

import io.vlmflux.cuda.gpu.DeviceBuffer;

/**
 * Where the rows of an {@link EmbeddingSpan} live: on the host (every backend reads them) or on the GPU (a GPU vision
 * encoder's output, spliced by the CUDA decoder without a host round trip). A device span is valid only on the
 * stream that wrote it and until its owner reuses the buffer (the owner keeps it until the prefill that reads it was
 * enqueued); a backend that cannot read device rows rejects them with an error naming the span.
 */
public sealed interface SpanRows permits SpanRows.Host, SpanRows.Device {

    /** Bytes the rows of a {@code length x hidden} span need in this representation. */
    long bytesFor(int length, int hidden);

    /** Row-major {@code [length, hidden]} fp32 on the host. */
    record Host(float[] data) implements SpanRows {
        public Host {
            if (data == null) throw new IllegalArgumentException("host span rows must not be null");
        }
        @Override public long bytesFor(int length, int hidden) { return 4L * length * hidden; }
    }

    /** {@code [length, hidden]} on the device, bf16 when {@code bf16}, else fp32. */
    record Device(DeviceBuffer buffer, boolean bf16) implements SpanRows {
        public Device {
            if (buffer == null) throw new IllegalArgumentException("device span rows must not be null");
        }
        @Override public long bytesFor(int length, int hidden) { return (bf16 ? 2L : 4L) * length * hidden; }
    }
}
