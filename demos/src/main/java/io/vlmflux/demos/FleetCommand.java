package io.vlmflux.demos;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vlmflux.demos.fleet.FleetNode;
import io.vlmflux.demos.fleet.StatsCaptioner;
import io.vlmflux.pipeline.config.KafkaOutputConfig;
import io.vlmflux.sinks.KafkaSink;
import io.vlmflux.sources.Durations;
import reactor.core.publisher.Mono;
import reactor.netty.DisposableServer;
import reactor.netty.http.server.HttpServer;

import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * {@code vlmflux fleet}: one node of a fleet (docs/fleet.md). Joins the consumer group of the cameras topic, runs the
 * cameras Kafka assigns it and sends their records to the fleet's events topic; {@code GET /v1/fleet} shows the
 * node's cameras and the group's members. Prints one line {@code fleet: NODE owns [ids]} on stdout per change.
 */
public final class FleetCommand implements Command {
    static final Set<String> VALUED = Set.of("fleet", "group", "node", "cameras-topic", "events-topic", "session-timeout", "host", "port", "captioner");
    public static final String DEFAULT_GROUP = "vlmflux-fleet", DEFAULT_CAMERAS = "vlmflux.cameras", DEFAULT_EVENTS = "vlmflux.records";

    @Override public String summary() { return "run one node of a fleet: cameras from a Kafka topic, shared by a consumer group"; }

    @Override public String usage() {
        return """
                vlmflux fleet --fleet kafka://BROKERS [--group NAME] [--node NAME] [--cameras-topic T] [--events-topic T]
                              [--session-timeout 10s] [--host 127.0.0.1] [--port 8080] [--captioner stats]
                  --fleet            the brokers, host:port[,host:port]
                  --group            the fleet's consumer group (default %s): nodes of one group share its cameras
                  --node             this node's name (default: host name and process id)
                  --cameras-topic    compacted topic of camera records, key = camera id (default %s)
                  --events-topic     topic the nodes send captions and events to (default %s)
                  --session-timeout  a node silent this long loses its cameras to the others (default 10s; 6s..)
                  --port             HTTP port of GET /v1/fleet (0: any free port; printed)
                  --captioner        stats: captions state each frame's size and brightness (no model; see docs/fleet.md)
                """.formatted(DEFAULT_GROUP, DEFAULT_CAMERAS, DEFAULT_EVENTS);
    }

    @Override public int run(List<String> args) throws Exception {
        Args a = Args.parse(args, VALUED, Set.of());
        if (!a.positional().isEmpty()) throw new UsageException("unexpected argument '" + a.positional().getFirst() + "'");
        String captioner = a.get("captioner", "stats");
        if (!captioner.equals("stats"))
            throw new UsageException("--captioner: only 'stats' (no model) in 'vlmflux fleet'; for model captions run 'vlmflux serve --fleet kafka://BROKERS' (docs/fleet.md)");
        Settings st = Settings.of(a);
        String brokers = st.brokers(), events = st.events().topic(), node = st.options().node();
        KafkaOutputConfig out = st.events();
        Duration session = st.options().sessionTimeout();
        int port = a.getInt("port", 8080);
        if (port < 0 || port > 65535) throw new UsageException("--port must be in 0..65535, got " + port);

        FleetNode.Options options = st.options();
        StatsCaptioner runner = new StatsCaptioner(new KafkaSink(out, null, Map.of("vlmflux-node", node)));
        FleetNode fleet = new FleetNode(options, runner, n -> {
            System.out.println("fleet: " + node + " owns " + n.owned().keySet());
            System.out.flush();
        });
        DisposableServer http = HttpServer.create().host(a.get("host", "127.0.0.1")).port(port)
                .route(r -> r.get("/v1/fleet", (req, res) -> {
                    ObjectNode o = fleet.describe();
                    byte[] b = o.toString().getBytes(StandardCharsets.UTF_8);
                    return res.status(200).header("Content-Type", "application/json").sendByteArray(Mono.just(b));
                }))
                .bindNow(Duration.ofSeconds(10));
        CountDownLatch stopped = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            shutdown(fleet, runner, http);
            stopped.countDown();
        }, "vlmflux-fleet-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        System.out.println("fleet: " + node + " listening on port " + http.port() + " (group " + options.group() + ", cameras " + options.camerasTopic()
                + ", events " + events + ")");
        System.out.flush();
        http.onDispose().block();
        stopped.await(30, TimeUnit.SECONDS);
        return 0;
    }

    /** The fleet flags shared by {@code vlmflux fleet} and {@code vlmflux serve --fleet}. */
    static final Set<String> FLEET_FLAGS = Set.of("fleet", "group", "node", "cameras-topic", "events-topic", "session-timeout");

    /**
     * The fleet flags, checked: {@code --fleet kafka://BROKERS} (required), {@code --group}, {@code --node},
     * {@code --cameras-topic}, {@code --events-topic}, {@code --session-timeout}.
     */
    record Settings(String brokers, FleetNode.Options options, KafkaOutputConfig events) {
        static Settings of(Args a) {
            String spec = a.require("fleet");
            if (!spec.startsWith("kafka://")) throw new UsageException("--fleet expects kafka://BROKERS, got '" + spec + "'");
            String brokers = spec.substring("kafka://".length()).replaceAll("/+$", "");
            KafkaOutputConfig out;
            try {
                out = new KafkaOutputConfig(brokers, a.get("events-topic", DEFAULT_EVENTS), null, null, null, null, null);
            } catch (IllegalArgumentException e) {
                throw new UsageException("--fleet/--events-topic: " + e.getMessage());
            }
            Duration session;
            try {
                session = Durations.parse(a.get("session-timeout", "10s"));
            } catch (IllegalArgumentException e) {
                throw new UsageException("--session-timeout: " + e.getMessage());
            }
            if (session.toMillis() < 1000) throw new UsageException("--session-timeout must be at least 1s, got " + a.get("session-timeout"));
            String node;
            try {
                node = a.get("node", InetAddress.getLocalHost().getHostName() + "-" + ProcessHandle.current().pid());
            } catch (java.net.UnknownHostException e) {
                node = "node-" + ProcessHandle.current().pid();
            }
            if (node.isBlank()) throw new UsageException("--node must not be blank");
            return new Settings(brokers, new FleetNode.Options(brokers, a.get("cameras-topic", DEFAULT_CAMERAS), a.get("group", DEFAULT_GROUP), node, session), out);
        }
    }

    private static void shutdown(FleetNode fleet, StatsCaptioner runner, DisposableServer http) {
        fleet.close();      // leaves the group: the cameras move to the other nodes now, not after the session timeout
        runner.close();
        http.disposeNow(Duration.ofSeconds(5));
    }

}
