package io.vlmflux.llm.cpu;

import io.vlmflux.llm.Decoder;

/**
 * Sees the inputs of each decoder layer's linears during a CPU forward (calibration for {@code vlmflux quantize --method
 * awq}). Points: {@code "qkv"} (normed input of q/k/v), {@code "o"} (attention output, input of o_proj),
 * {@code "gate_up"} (normed input of gate/up), {@code "down"} (input of down_proj). {@code x} holds {@code n} rows of
 * {@code width} and is only valid during the call.
 */
@FunctionalInterface
public interface ActivationTap {
    void linearInput(int layer, String point, float[] x, int n, int width);

    /** Attaches {@code tap} (null: detaches) to a decoder of the CPU backend; throws for other backends. */
    static void attach(Decoder d, ActivationTap tap) {
        if (!(d instanceof CpuDecoder c)) throw new IllegalArgumentException("activation taps need the CPU backend, got " + d.backend());
        c.tap = tap;
    }
}
