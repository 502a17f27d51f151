package io.vlmflux.cuda.gpu;

import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * Reusable cuLaunchKernel parameter block: 8-byte native slots and a fixed array of pointers to them (the driver
 * copies the values at launch, so one block serves every launch of its owner's thread). Not thread-safe.
 */
final class LaunchArgs implements AutoCloseable {
    static final int MAX = 32;
    private final LongPointer slots = new LongPointer(MAX);
    private final PointerPointer<Pointer> params = new PointerPointer<>(MAX);
    private int n;

    LaunchArgs() {
        for (int i = 0; i < MAX; i++) params.put(i, Cuda.ptr(slots.address() + 8L * i));
    }

    LaunchArgs reset() {
        n = 0;
        return this;
    }

    private int next() {
        if (n >= MAX) throw new IllegalStateException("more than " + MAX + " kernel arguments");
        return n++;
    }

    LaunchArgs ptr(DeviceBuffer b) { slots.put(next(), b == null ? 0L : b.address()); return this; }
    LaunchArgs ptr(long address) { slots.put(next(), address); return this; }
    LaunchArgs i32(int v) { slots.put(next(), v & 0xffffffffL); return this; }
    LaunchArgs i64(long v) { slots.put(next(), v); return this; }
    LaunchArgs f32(float v) { slots.put(next(), Float.floatToRawIntBits(v) & 0xffffffffL); return this; }

    PointerPointer<Pointer> params() { return params; }

    @Override
    public void close() {
        params.close();
        slots.close();
    }
}
