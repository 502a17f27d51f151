package io.vlmflux.sinks;

import io.vlmflux.pipeline.config.MqttOutputConfig;
import io.vlmflux.pipeline.metrics.StageMetrics;
import org.eclipse.paho.client.mqttv3.IMqttActionListener;
import org.eclipse.paho.client.mqttv3.IMqttDeliveryToken;
import org.eclipse.paho.client.mqttv3.IMqttToken;
import org.eclipse.paho.client.mqttv3.MqttAsyncClient;
import org.eclipse.paho.client.mqttv3.MqttCallback;
import org.eclipse.paho.client.mqttv3.MqttConnectOptions;
import org.eclipse.paho.client.mqttv3.MqttException;
import org.eclipse.paho.client.mqttv3.MqttMessage;
import org.eclipse.paho.client.mqttv3.persist.MemoryPersistence;
import reactor.core.publisher.Mono;
import reactor.core.publisher.MonoSink;
import reactor.core.publisher.Sinks;
import reactor.util.retry.Retry;

import java.time.Duration;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Records over MQTT 3.1.1 (Eclipse Paho), each to {@code PREFIX/SOURCE/TYPE}. The sink connects at once and, when
 * the connection fails or is lost, again after {@code reconnectMinMs}, doubling up to {@code reconnectMaxMs}. A
 * record waits for a connection, is published with the configured QoS and, when the connection drops before the
 * broker acknowledged it, published again after the reconnect (at least once); one not acknowledged within
 * {@code deliveryTimeoutMs} is dropped and counted. Clean sessions: the broker keeps nothing for this client.
 */
public final class MqttSink extends RecordSink {
    private static final System.Logger LOG = System.getLogger(MqttSink.class.getName());

    private final MqttOutputConfig config;
    private final MqttAsyncClient client;
    private final MqttConnectOptions options;
    private final ScheduledExecutorService reconnects;
    /** Completes when connected; replaced by a fresh one when the connection is lost. */
    private final AtomicReference<Gate> whenConnected = new AtomicReference<>(new Gate());
    /** Publishes waiting for their acknowledgement on the current connection: failed (and retried) when it drops. */
    private final Set<MonoSink<Void>> pending = ConcurrentHashMap.newKeySet();
    private final AtomicInteger failedConnects = new AtomicInteger();
    private final AtomicLong connects = new AtomicLong();
    private volatile boolean closed;

    public MqttSink(MqttOutputConfig c, StageMetrics metrics) {
        super("mqtt", metrics, c.maxInFlight());
        this.config = c;
        String id = c.clientId() != null ? c.clientId() : "vlmflux-" + UUID.randomUUID().toString().substring(0, 8);
        try {
            this.client = new MqttAsyncClient(c.url(), id, new MemoryPersistence());
        } catch (MqttException e) {
            throw new IllegalArgumentException("output.mqtt.url '" + c.url() + "': " + e.getMessage(), e);
        }
        options = new MqttConnectOptions();
        options.setCleanSession(true);
        options.setAutomaticReconnect(false);   // our own backoff, so the delays are the configured ones
        options.setKeepAliveInterval(c.keepAliveS());
        options.setConnectionTimeout(Math.max(1, Math.min(10, c.keepAliveS())));
        options.setMaxInflight(c.maxInFlight() + 16);
        reconnects = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "vlmflux-mqtt-reconnect");
            t.setDaemon(true);
            return t;
        });
        client.setCallback(new MqttCallback() {
            @Override public void connectionLost(Throwable cause) { lost(cause); }
            @Override public void messageArrived(String topic, MqttMessage message) {}
            @Override public void deliveryComplete(IMqttDeliveryToken token) {}
        });
        connect();
    }

    /** Whether the client is connected now. */
    public boolean connected() { return client.isConnected(); }

    /** Successful connections so far (1 after the first; each reconnect adds one). */
    public long connects() { return connects.get(); }

    /** The topic of a record: {@code PREFIX/SOURCE/TYPE}, the source's '/', '+', '#' replaced by '_'. */
    public String topic(SinkRecord r) {
        return config.topicPrefix() + "/" + level(r.source()) + "/" + r.type();
    }

    static String level(String s) {
        String l = s.replace('/', '_').replace('+', '_').replace('#', '_');
        return l.isEmpty() ? "_" : l;
    }

    private void connect() {
        if (closed) return;
        try {
            client.connect(options, null, new IMqttActionListener() {
                @Override public void onSuccess(IMqttToken t) {
                    failedConnects.set(0);
                    connects.incrementAndGet();
                    if (connects.get() > 1) LOG.log(System.Logger.Level.INFO, "vlmflux: mqtt sink reconnected to " + config.url());
                    Gate g = whenConnected.get();
                    g.open = true;
                    g.one.tryEmitEmpty();
                }
                @Override public void onFailure(IMqttToken t, Throwable e) { scheduleReconnect(e); }
            });
        } catch (MqttException e) {
            scheduleReconnect(e);
        }
    }

    private void lost(Throwable cause) {
        whenConnected.updateAndGet(g -> g.open ? new Gate() : g);
        for (MonoSink<Void> s : pending) s.error(new MqttException(MqttException.REASON_CODE_CONNECTION_LOST, cause));
        pending.clear();
        LOG.log(System.Logger.Level.WARNING, "vlmflux: mqtt sink lost " + config.url() + ": " + cause);
        scheduleReconnect(cause);
    }

    private void scheduleReconnect(Throwable why) {
        if (closed) return;
        int n = failedConnects.getAndIncrement();
        long delay = Math.min(config.reconnectMaxMs(), (long) config.reconnectMinMs() << Math.min(n, 20));
        if (n > 0) LOG.log(System.Logger.Level.DEBUG, "vlmflux: mqtt connect failed (" + why + "); next try in " + delay + " ms");
        try {
            reconnects.schedule(this::connect, delay, TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.RejectedExecutionException closing) {
            // closed meanwhile
        }
    }

    @Override protected Mono<Void> send(SinkRecord r) {
        String topic = topic(r);
        byte[] payload = r.payload();
        Mono<Void> once = Mono.defer(() -> whenConnected.get().one.asMono()).then(Mono.create(s -> {
            pending.add(s);
            s.onDispose(() -> pending.remove(s));
            try {
                client.publish(topic, payload, config.qos(), false, null, new IMqttActionListener() {
                    @Override public void onSuccess(IMqttToken t) {
                        pending.remove(s);
                        s.success();
                    }
                    @Override public void onFailure(IMqttToken t, Throwable e) {
                        pending.remove(s);
                        s.error(e);
                    }
                });
            } catch (MqttException e) {   // not connected (any more), too many in flight
                pending.remove(s);
                s.error(e);
            }
        }));
        return once
                .doOnError(e -> attemptFailed())
                .retryWhen(Retry.backoff(Long.MAX_VALUE, Duration.ofMillis(20)).maxBackoff(Duration.ofSeconds(1)).filter(e -> !closed))
                .timeout(Duration.ofMillis(config.deliveryTimeoutMs()));
    }

    /** Open once connected; a lost connection replaces it with a closed one. */
    private static final class Gate {
        final Sinks.One<Void> one = Sinks.one();
        volatile boolean open;
    }

    @Override public void close(Duration timeout) {
        closed = true;
        reconnects.shutdownNow();
        try {
            if (client.isConnected()) client.disconnect(timeout.toMillis()).waitForCompletion(timeout.toMillis() + 1000);
        } catch (MqttException e) {
            LOG.log(System.Logger.Level.DEBUG, "vlmflux: mqtt disconnect: " + e);
        } finally {
            try {
                client.close(true);
            } catch (MqttException e) {
                LOG.log(System.Logger.Level.DEBUG, "vlmflux: mqtt close: " + e);
            }
        }
    }
}
