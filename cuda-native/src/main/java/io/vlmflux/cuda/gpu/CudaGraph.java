package io.vlmflux.cuda.gpu;

import org.bytedeco.cuda.cudart.CUgraphExec_st;
import org.bytedeco.cuda.cudart.CUgraph_st;
import org.bytedeco.cuda.global.cudart;

/**
 * A CUDA graph captured from a stream and instantiated once; {@link #launch(GpuStream)} replays it. Captured work
 * must read anything that changes between replays (position, length, token id) from device memory.
 */
public final class CudaGraph implements AutoCloseable {
    private final CUgraph_st graph;
    private final CUgraphExec_st exec;
    private final String name;
    private boolean closed;

    private CudaGraph(String name, CUgraph_st graph, CUgraphExec_st exec) {
        this.name = name;
        this.graph = graph;
        this.exec = exec;
    }

    /** Captures the work {@code body} enqueues on {@code stream} (thread-local capture mode). */
    public static CudaGraph capture(String name, GpuStream stream, Runnable body) {
        stream.device().makeCurrent();
        Cuda.check(cudart.cudaStreamBeginCapture(stream.handle(), cudart.cudaStreamCaptureModeThreadLocal),
                "cudaStreamBeginCapture(" + name + ")");
        CUgraph_st g = new CUgraph_st();
        try {
            body.run();
        } catch (RuntimeException | Error e) {
            cudart.cudaStreamEndCapture(stream.handle(), g);
            if (!g.isNull()) cudart.cudaGraphDestroy(g);
            cudart.cudaGetLastError();
            throw e;
        }
        Cuda.check(cudart.cudaStreamEndCapture(stream.handle(), g), "cudaStreamEndCapture(" + name + ")");
        CUgraphExec_st x = new CUgraphExec_st();
        int rc = cudart.cudaGraphInstantiate(x, g, 0L);
        if (rc != 0) {
            cudart.cudaGraphDestroy(g);
            Cuda.check(rc, "cudaGraphInstantiate(" + name + ")");
        }
        return new CudaGraph(name, g, x);
    }

    public void launch(GpuStream stream) {
        if (closed) throw new IllegalStateException("graph '" + name + "' is closed");
        Cuda.check(cudart.cudaGraphLaunch(exec, stream.handle()), "cudaGraphLaunch(" + name + ")");
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        cudart.cudaGraphExecDestroy(exec);
        cudart.cudaGraphDestroy(graph);
    }
}
