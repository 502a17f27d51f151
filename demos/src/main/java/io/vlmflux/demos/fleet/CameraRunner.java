package io.vlmflux.demos.fleet;

/**
 * Starts and stops the cameras a fleet node owns. Both are called on the node's consumer thread; {@link #stop}
 * returns only once the camera produces nothing more and what it produced is acknowledged (or given up), so the
 * camera's next owner, which Kafka assigns only after this node returned from its revoke callback, never overlaps.
 */
public interface CameraRunner extends AutoCloseable {
    void start(CameraDef camera);

    void stop(String id);

    @Override default void close() {}
}
