package io.vlmflux.demos.fleet;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.CooperativeStickyAssignor;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * One node of a fleet: a member of the Kafka consumer group {@code group} on the compacted cameras topic, owning the
 * cameras of the partitions Kafka assigns it (cooperative sticky assignment). On assignment it reads those partitions
 * from the beginning (no offsets are committed: the state of a partition is the latest record per key, a tombstone
 * deletes), starts their cameras once it reached the end offsets seen at assignment, and keeps polling: a new,
 * changed or deleted record starts, restarts or stops its camera. On revoke (and on loss) it stops the partitions'
 * cameras synchronously, inside the callback, before Kafka may give them to another node.
 *
 * <p>Ownership is per partition (a camera's partition is the hash of its id): with fewer partitions than cameras
 * some cameras always move together, and more nodes than partitions leaves nodes idle.
 */
public final class FleetNode implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger("vlmflux.fleet");
    private static final Duration MEMBERS_EVERY = Duration.ofSeconds(2);

    /**
     * @param brokers        bootstrap servers, host:port[,host:port]
     * @param camerasTopic   the compacted topic of camera records
     * @param group          consumer group of the fleet
     * @param node           this node's name (client id; shown in the membership)
     * @param sessionTimeout how long the group waits for a silent node before giving its cameras to others
     */
    public record Options(String brokers, String camerasTopic, String group, String node, Duration sessionTimeout) {
        public Options {
            Objects.requireNonNull(brokers, "brokers");
            Objects.requireNonNull(camerasTopic, "camerasTopic");
            Objects.requireNonNull(group, "group");
            Objects.requireNonNull(node, "node");
            if (sessionTimeout == null || sessionTimeout.toMillis() < 1000)
                throw new IllegalArgumentException("session timeout must be at least 1 s, got " + sessionTimeout);
        }
    }

    private final Options options;
    private final CameraRunner runner;
    private final Consumer<FleetNode> onChange;
    private final KafkaConsumer<String, byte[]> consumer;
    private final Admin admin;
    private final ObjectMapper json = new ObjectMapper();
    private final Thread thread;
    private volatile boolean running = true;

    // consumer thread only
    private final Map<TopicPartition, Map<String, CameraDef>> desired = new HashMap<>();
    private final Map<TopicPartition, Long> loadingUntil = new HashMap<>();
    private final Map<String, CameraDef> started = new HashMap<>();
    private final Map<String, TopicPartition> startedIn = new HashMap<>();
    // read by the API
    private final Map<String, String> owned = new ConcurrentHashMap<>();          // camera id -> topic-partition
    private final Map<String, String> errors = new ConcurrentHashMap<>();         // key -> why its record was refused
    private volatile List<String> partitions = List.of();
    private volatile ObjectNode members;
    private volatile long rebalances;
    private volatile Instant lastRebalance;

    /** Joins the group and starts polling on its own thread; {@code onChange} runs (on that thread) after each change of the owned cameras. */
    public FleetNode(Options options, CameraRunner runner, Consumer<FleetNode> onChange) {
        this.options = options;
        this.runner = runner;
        this.onChange = onChange != null ? onChange : n -> {};
        Map<String, Object> p = new HashMap<>();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, options.brokers());
        p.put(ConsumerConfig.GROUP_ID_CONFIG, options.group());
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, options.node());
        p.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, CooperativeStickyAssignor.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, (int) options.sessionTimeout().toMillis());
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, (int) Math.max(300, options.sessionTimeout().toMillis() / 4));
        p.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 1000);
        this.consumer = new KafkaConsumer<>(p, new StringDeserializer(), new ByteArrayDeserializer());
        this.admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, options.brokers(),
                AdminClientConfig.CLIENT_ID_CONFIG, options.node() + "-admin"));
        this.thread = Thread.ofPlatform().name("vlmflux-fleet-" + options.node()).unstarted(this::loop);
        thread.start();
    }

    public Options options() { return options; }

    /** Camera id -> its partition, of the cameras this node runs now. */
    public Map<String, String> owned() { return new TreeMap<>(owned); }

    private void loop() {
        long nextMembers = 0;
        try {
            consumer.subscribe(List.of(options.camerasTopic()), new Rebalance());
            while (running) {
                for (ConsumerRecord<String, byte[]> r : consumer.poll(Duration.ofMillis(200))) apply(r);
                boolean changed = false;
                for (TopicPartition tp : new ArrayList<>(loadingUntil.keySet())) {
                    if (consumer.position(tp) >= loadingUntil.get(tp)) {
                        loadingUntil.remove(tp);
                        changed = true;
                    }
                }
                if (reconcile() || changed) this.onChange.accept(this);
                if (System.nanoTime() > nextMembers) {
                    refreshMembers();
                    nextMembers = System.nanoTime() + MEMBERS_EVERY.toNanos();
                }
            }
        } catch (WakeupException e) {
            if (running) LOG.log(System.Logger.Level.ERROR, "fleet node woken up while running", e);
        } catch (RuntimeException e) {
            LOG.log(System.Logger.Level.ERROR, "fleet node " + options.node() + " failed: " + e, e);
        } finally {
            try {
                consumer.close(Duration.ofSeconds(10));   // leaves the group: the revoke callback stops the cameras
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "closing the fleet consumer: " + e);
            }
            stopAll(List.copyOf(started.keySet()));
        }
    }

    private void apply(ConsumerRecord<String, byte[]> r) {
        TopicPartition tp = new TopicPartition(r.topic(), r.partition());
        Map<String, CameraDef> m = desired.computeIfAbsent(tp, k -> new HashMap<>());
        String key = r.key();
        String where = r.topic() + "-" + r.partition() + "@" + r.offset();
        if (key == null) {
            LOG.log(System.Logger.Level.WARNING, "fleet: ignoring " + where + ": camera records need a key (the camera id)");
            return;
        }
        if (r.value() == null) {
            m.remove(key);
            errors.remove(key);
            return;
        }
        try {
            m.put(key, CameraDef.parse(key, r.value(), where));
            errors.remove(key);
        } catch (IllegalArgumentException e) {
            m.remove(key);
            errors.put(key, e.getMessage());
            LOG.log(System.Logger.Level.WARNING, "fleet: camera record refused: " + e.getMessage());
        }
    }

    /** Starts, restarts and stops cameras to match the loaded partitions; true when anything changed. */
    private boolean reconcile() {
        boolean changed = false;
        Map<String, CameraDef> want = new HashMap<>();
        Map<String, TopicPartition> wantIn = new HashMap<>();
        for (var e : desired.entrySet()) {
            if (loadingUntil.containsKey(e.getKey())) continue;
            for (CameraDef d : e.getValue().values()) {
                want.put(d.id(), d);
                wantIn.put(d.id(), e.getKey());
            }
        }
        for (String id : List.copyOf(started.keySet())) {
            CameraDef now = want.get(id);
            if (now == null || !now.equals(started.get(id))) {
                // only cameras of loaded partitions are compared: a loading partition is not ours to stop
                TopicPartition tp = startedIn.get(id);
                if (now == null && loadingUntil.containsKey(tp)) continue;
                stopAll(List.of(id));
                changed = true;
            }
        }
        for (var e : want.entrySet()) {
            if (started.containsKey(e.getKey())) continue;
            try {
                runner.start(e.getValue());
                started.put(e.getKey(), e.getValue());
                startedIn.put(e.getKey(), wantIn.get(e.getKey()));
                owned.put(e.getKey(), wantIn.get(e.getKey()).toString());
                errors.remove(e.getKey());
                LOG.log(System.Logger.Level.INFO, "fleet " + options.node() + ": started camera " + e.getKey() + " (" + wantIn.get(e.getKey()) + ")");
            } catch (RuntimeException ex) {
                errors.put(e.getKey(), "cannot start: " + ex.getMessage());
                desired.get(wantIn.get(e.getKey())).remove(e.getKey());   // until its record changes
                LOG.log(System.Logger.Level.WARNING, "fleet: camera " + e.getKey() + " cannot start: " + ex.getMessage());
            }
            changed = true;
        }
        return changed;
    }

    private void stopAll(Collection<String> ids) {
        for (String id : ids) {
            try {
                runner.stop(id);
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.WARNING, "fleet: stopping camera " + id + ": " + e.getMessage());
            }
            started.remove(id);
            startedIn.remove(id);
            owned.remove(id);
            LOG.log(System.Logger.Level.INFO, "fleet " + options.node() + ": stopped camera " + id);
        }
    }

    private final class Rebalance implements ConsumerRebalanceListener {
        @Override public void onPartitionsRevoked(Collection<TopicPartition> parts) { drop(parts, "revoked"); }

        @Override public void onPartitionsLost(Collection<TopicPartition> parts) { drop(parts, "lost"); }

        @Override public void onPartitionsAssigned(Collection<TopicPartition> parts) {
            rebalances++;
            lastRebalance = Instant.now();
            if (!parts.isEmpty()) {
                consumer.seekToBeginning(parts);
                Map<TopicPartition, Long> ends = consumer.endOffsets(parts);
                for (TopicPartition tp : parts) {
                    desired.put(tp, new HashMap<>());
                    loadingUntil.put(tp, ends.getOrDefault(tp, 0L));
                }
            }
            partitions = consumer.assignment().stream().map(TopicPartition::toString).sorted().toList();
            LOG.log(System.Logger.Level.INFO, "fleet " + options.node() + ": assigned " + parts + ", now " + partitions);
        }

        private void drop(Collection<TopicPartition> parts, String why) {
            if (parts.isEmpty()) return;
            List<String> ids = new ArrayList<>();
            for (var e : startedIn.entrySet()) if (parts.contains(e.getValue())) ids.add(e.getKey());
            stopAll(ids);   // synchronously, before returning: the next owner starts only after this
            for (TopicPartition tp : parts) {
                desired.remove(tp);
                loadingUntil.remove(tp);
            }
            var left = new TreeSet<String>();
            for (TopicPartition tp : consumer.assignment()) if (!parts.contains(tp)) left.add(tp.toString());
            partitions = List.copyOf(left);
            LOG.log(System.Logger.Level.INFO, "fleet " + options.node() + ": " + why + " " + parts + " (cameras " + ids + ")");
            if (!ids.isEmpty()) onChange.accept(FleetNode.this);
        }
    }

    private void refreshMembers() {
        try {
            ConsumerGroupDescription g = admin.describeConsumerGroups(List.of(options.group())).all().get(5, TimeUnit.SECONDS).get(options.group());
            ObjectNode o = json.createObjectNode();
            o.put("state", g.groupState().toString().toLowerCase(java.util.Locale.ROOT));
            if (g.coordinator() != null) o.put("coordinator", g.coordinator().host() + ":" + g.coordinator().port());
            ArrayNode a = o.putArray("members");
            List<MemberDescription> ms = new ArrayList<>(g.members());
            ms.sort(java.util.Comparator.comparing(MemberDescription::clientId));
            for (MemberDescription m : ms) {
                ObjectNode n = a.addObject().put("node", m.clientId()).put("host", m.host());
                ArrayNode parts = n.putArray("partitions");
                m.assignment().topicPartitions().stream().map(TopicPartition::toString).sorted().forEach(parts::add);
            }
            members = o;
        } catch (Exception e) {
            if (e instanceof InterruptedException) Thread.currentThread().interrupt();
            ObjectNode o = json.createObjectNode().put("state", "unknown").put("error", String.valueOf(e.getMessage()));
            members = o;
        }
    }

    /** This node's view for the API: node, group, owned cameras, partitions, refused records, the group's members. */
    public ObjectNode describe() {
        ObjectNode o = json.createObjectNode().put("object", "fleet.node").put("node", options.node()).put("group", options.group())
                .put("cameras_topic", options.camerasTopic()).put("session_timeout_ms", options.sessionTimeout().toMillis())
                .put("rebalances", rebalances).put("last_rebalance", lastRebalance == null ? null : lastRebalance.toString());
        ObjectNode cams = o.putObject("cameras");
        owned().forEach(cams::put);
        ArrayNode p = o.putArray("partitions");
        partitions.forEach(p::add);
        ObjectNode err = o.putObject("refused");
        new TreeMap<>(errors).forEach(err::put);
        o.set("group_state", members == null ? json.createObjectNode().put("state", "unknown") : members);
        return o;
    }

    /** Leaves the group (its cameras go to the other nodes at once), stops this node's cameras. */
    @Override public void close() {
        running = false;
        consumer.wakeup();
        try {
            thread.join(30_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        admin.close(Duration.ofSeconds(2));
    }
}
