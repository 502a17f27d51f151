package io.vlmflux.cuda.gpu;

import org.bytedeco.javacpp.Pointer;

/**
 * A borrowed view of device memory: address, size and a name for error messages. The {@link DeviceArena} that
 * handed it out owns the memory; a buffer is valid until the arena is closed or reset below it.
 */
public record DeviceBuffer(String name, long address, long bytes) {
    public DeviceBuffer {
        if (address == 0) throw new IllegalArgumentException("device buffer '" + name + "': null address");
        if (bytes < 0) throw new IllegalArgumentException("device buffer '" + name + "': negative size " + bytes);
    }

    /** A sub-range [offset, offset + length) of this buffer. */
    public DeviceBuffer slice(long offset, long length, String sliceName) {
        if (offset < 0 || length < 0 || offset + length > bytes)
            throw new IllegalArgumentException("slice [" + offset + ", " + (offset + length) + ") of '" + name
                    + "' (" + bytes + " bytes) is out of range");
        return new DeviceBuffer(sliceName, address + offset, length);
    }

    Pointer pointer() {
        return Cuda.ptr(address);
    }

    /** Throws unless this buffer holds at least {@code need} bytes; {@code what} describes the expected tensor. */
    void require(long need, String op, String what) {
        if (bytes < need)
            throw new IllegalArgumentException(op + ": buffer '" + name + "' holds " + bytes + " bytes, needs " + need
                    + " (" + what + ")");
    }
}
