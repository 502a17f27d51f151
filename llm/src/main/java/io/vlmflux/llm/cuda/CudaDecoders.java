package io.vlmflux.llm.cuda;

import io.vlmflux.cuda.gpu.GpuStream;
import io.vlmflux.llm.Decoder;

import java.util.Optional;

/**
 * What other modules may know about a CUDA decoder without depending on its class: the stream all its work is
 * enqueued on. A vision encoder that writes device embedding spans on that same stream needs no synchronization
 * before the decoder's prefill reads them (stream order).
 */
public final class CudaDecoders {
    private CudaDecoders() {}

    /** The stream of {@code decoder} when it is a CUDA decoder, else empty. */
    public static Optional<GpuStream> stream(Decoder decoder) {
        return decoder instanceof CudaDecoder c ? Optional.of(c.stream()) : Optional.empty();
    }
}
