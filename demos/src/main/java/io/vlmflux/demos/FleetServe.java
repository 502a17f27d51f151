package io.vlmflux.demos;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.netty.handler.codec.http.HttpMethod;
import io.vlmflux.demos.fleet.FleetNode;
import io.vlmflux.demos.fleet.StreamCaptioner;
import io.vlmflux.demos.serve.ChatServer;
import io.vlmflux.demos.serve.LiveStreams;
import io.vlmflux.pipeline.caption.CaptionOptions;
import io.vlmflux.sinks.KafkaSink;
import org.reactivestreams.Publisher;
import reactor.core.publisher.Mono;
import reactor.netty.http.server.HttpServerRequest;
import reactor.netty.http.server.HttpServerResponse;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * {@code vlmflux serve --fleet kafka://BROKERS}: the serve node joins a fleet (docs/fleet.md). The cameras Kafka
 * assigns it become live streams of the server, captioned by its model ({@link StreamCaptioner}); their records go
 * to the fleet's events topic; {@code GET /v1/fleet} shows the node's cameras and the group's members (behind the
 * API key like every {@code /v1} path). Prints {@code fleet: NODE owns [ids]} on stdout after every change of the
 * node's cameras, as {@code vlmflux fleet} does.
 */
final class FleetServe implements AutoCloseable {
    static final Set<String> VALUED = FleetCommand.FLEET_FLAGS;

    private final FleetCommand.Settings settings;
    private volatile FleetNode node;
    private volatile StreamCaptioner runner;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    private FleetServe(FleetCommand.Settings settings) { this.settings = settings; }

    /** The fleet of the flags, checked; null without {@code --fleet}. Fleet flags without {@code --fleet} are refused. */
    static FleetServe of(Args a) {
        if (!a.has("fleet")) {
            for (String f : List.of("group", "node", "cameras-topic", "events-topic", "session-timeout"))
                if (a.has(f)) throw new UsageException("--" + f + " is a fleet flag: give --fleet kafka://BROKERS too");
            return null;
        }
        if (a.flag("no-streams")) throw new UsageException("--fleet runs the fleet's cameras as live streams: not with --no-streams");
        return new FleetServe(FleetCommand.Settings.of(a));
    }

    String node() { return settings.options().node(); }

    /** The server's routes: {@code GET /v1/fleet}, then those of {@code streams}. */
    ChatServer.Routes routes(LiveStreams streams) {
        return (String path, HttpServerRequest req, HttpServerResponse res) -> {
            if (!path.equals("/v1/fleet")) return streams.route(path, req, res);
            return fleetView(req, res);
        };
    }

    private Publisher<Void> fleetView(HttpServerRequest req, HttpServerResponse res) {
        if (!req.method().equals(HttpMethod.GET) && !req.method().equals(HttpMethod.HEAD)) {
            byte[] b = "{\"error\":{\"message\":\"GET /v1/fleet only\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"method_not_allowed\"}}"
                    .getBytes(StandardCharsets.UTF_8);
            return res.status(405).header("Allow", "GET").header("Content-Type", "application/json").sendByteArray(Mono.just(b)).then();
        }
        FleetNode n = node;
        ObjectNode o;
        if (n == null) {
            o = new com.fasterxml.jackson.databind.ObjectMapper().createObjectNode().put("object", "fleet.node").put("node", node())
                    .put("group", settings.options().group()).put("state", "joining");
        } else {
            o = n.describe();
            ArrayNode streams = o.putArray("streams");   // the live streams of this node's cameras, as GET /v1/streams/{id}
            for (String id : n.owned().keySet()) streams.add("/v1/streams/" + id);
            StreamCaptioner r = runner;
            if (r != null) o.put("events_not_forwarded", r.lost());
        }
        byte[] b = o.toString().getBytes(StandardCharsets.UTF_8);
        return res.status(200).header("Content-Type", "application/json").header("Content-Length", Integer.toString(b.length))
                .sendByteArray(Mono.just(b)).then();
    }

    /** Joins the group: from now on the cameras Kafka assigns this node run as streams of {@code streams}. */
    void start(LiveStreams streams, CaptionOptions captions) {
        String name = node();
        runner = new StreamCaptioner(streams, captions, new KafkaSink(settings.events(), null, Map.of("vlmflux-node", name)));
        node = new FleetNode(settings.options(), runner, n -> {
            System.out.println("fleet: " + name + " owns " + n.owned().keySet());
            System.out.flush();
        });
        System.out.println("fleet: " + name + " joined group " + settings.options().group() + " (cameras " + settings.options().camerasTopic()
                + ", events " + settings.events().topic() + ")");
        System.out.flush();
    }

    /** Leaves the group first (the cameras move to the other nodes at once), stops this node's cameras, flushes the sink. */
    @Override public void close() {
        if (!closed.compareAndSet(false, true)) return;
        FleetNode n = node;
        if (n != null) n.close();
        StreamCaptioner r = runner;
        if (r != null) r.close();
    }
}
