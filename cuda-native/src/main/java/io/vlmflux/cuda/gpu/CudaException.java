package io.vlmflux.cuda.gpu;

/** A failed CUDA, cuBLAS or NVRTC call; the message names the call, its arguments where useful, and the error. */
public final class CudaException extends RuntimeException {
    private final int code;

    public CudaException(String message, int code) {
        super(message);
        this.code = code;
    }

    public CudaException(String message, Throwable cause) {
        super(message, cause);
        this.code = -1;
    }

    /** The library's status code, or -1 when the failure was not a status code. */
    public int code() {
        return code;
    }
}
