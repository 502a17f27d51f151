package io.vlmflux.sinks;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * A real Mosquitto broker (Debian package {@code mosquitto}) as a child process on a loopback port chosen once, with
 * persistence in the test's folder, so a stopped and restarted broker keeps its persistent sessions' queues.
 */
public final class Mosquitto implements AutoCloseable {
    private final Path binary;
    private final Path dir;
    private final int port;
    private Process process;

    /** The mosquitto executable on PATH or in /usr/sbin, if installed. */
    public static Optional<Path> binary() {
        List<Path> dirs = new ArrayList<>();
        String path = System.getenv("PATH");
        if (path != null) for (String d : path.split(java.io.File.pathSeparator)) if (!d.isEmpty()) dirs.add(Path.of(d));
        dirs.add(Path.of("/usr/sbin"));
        dirs.add(Path.of("/usr/local/sbin"));
        for (Path d : dirs) {
            Path p = d.resolve("mosquitto");
            if (Files.isExecutable(p)) return Optional.of(p);
        }
        return Optional.empty();
    }

    public Mosquitto(Path binary, Path dir) throws IOException {
        this.binary = binary;
        this.dir = dir;
        this.port = InProcessKafka.freePort();
        Files.createDirectories(dir.resolve("data"));
        Files.writeString(dir.resolve("mosquitto.conf"), String.join("\n",
                "listener " + port + " 127.0.0.1",
                "allow_anonymous true",
                "persistence true",
                "persistence_location " + dir.resolve("data") + "/",
                "max_queued_messages 1000000",
                "user " + System.getProperty("user.name"),
                "log_dest stdout",
                "") );
    }

    public String url() { return "tcp://127.0.0.1:" + port; }

    public synchronized Mosquitto start() throws IOException, InterruptedException {
        if (process != null) return this;
        process = new ProcessBuilder(binary.toString(), "-c", dir.resolve("mosquitto.conf").toString())
                .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(dir.resolve("mosquitto.log").toFile())).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (true) {   // ready when it accepts connections
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress("127.0.0.1", port), 200);
                return this;
            } catch (IOException notYet) {
                if (!process.isAlive())
                    throw new IllegalStateException("mosquitto exited with " + process.exitValue() + ": " + Files.readString(dir.resolve("mosquitto.log")));
                if (System.nanoTime() > deadline) throw new IllegalStateException("mosquitto did not listen on " + port + " within 20 s: " + Files.readString(dir.resolve("mosquitto.log")));
                Thread.sleep(20);
            }
        }
    }

    /** SIGTERM: mosquitto saves its persistence file and exits. */
    public synchronized void stop() throws InterruptedException {
        if (process == null) return;
        process.destroy();
        if (!process.waitFor(20, TimeUnit.SECONDS)) process.destroyForcibly().waitFor();
        process = null;
    }

    @Override public void close() throws InterruptedException { stop(); }
}
