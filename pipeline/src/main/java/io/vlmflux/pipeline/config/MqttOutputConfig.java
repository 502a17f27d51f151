package io.vlmflux.pipeline.config;

import java.net.URI;
import java.net.URISyntaxException;
import java.util.Locale;

/**
 * The MQTT output ({@code output.mqtt}): each record is published as JSON to {@code PREFIX/SOURCE/TYPE}
 * (e.g. {@code vlmflux/cam1/caption}); the client reconnects with exponential backoff. See docs/sinks.md.
 *
 * @param url               {@code tcp://host:port} or {@code ssl://host:port}; required
 * @param topicPrefix       first topic levels; default {@code vlmflux}
 * @param qos               0 (a record counts as sent once written to the socket) or 1 (once the broker's PUBACK
 *                          came; re-sent after a reconnect); default 1
 * @param maxInFlight       records published but not yet acknowledged, at most; default 64
 * @param deliveryTimeoutMs a record not acknowledged within it (broker away) is dropped and counted; default 120000
 * @param reconnectMinMs    first reconnect delay; doubles per failed attempt; default 500
 * @param reconnectMaxMs    largest reconnect delay; default 30000
 * @param clientId          MQTT client id; default {@code vlmflux-} and a random suffix
 * @param keepAliveS        keep-alive interval in seconds (a dead connection is noticed within 1.5 times it); default 10
 */
public record MqttOutputConfig(String url, String topicPrefix, Integer qos, Integer maxInFlight, Integer deliveryTimeoutMs,
                               Integer reconnectMinMs, Integer reconnectMaxMs, String clientId, Integer keepAliveS) {
    public static final String DEFAULT_PREFIX = "vlmflux";

    public MqttOutputConfig {
        if (url == null || url.isBlank()) throw new IllegalArgumentException("field 'url' is required (tcp://host:1883)");
        try {
            URI u = new URI(url);
            String scheme = u.getScheme() == null ? "" : u.getScheme().toLowerCase(Locale.ROOT);
            if (!scheme.equals("tcp") && !scheme.equals("ssl")) throw new IllegalArgumentException("field 'url': '" + url + "' must start with tcp:// or ssl://");
            if (u.getHost() == null) throw new IllegalArgumentException("field 'url': '" + url + "' has no host");
            if (u.getRawPath() != null && !u.getRawPath().isEmpty() && !u.getRawPath().equals("/"))
                throw new IllegalArgumentException("field 'url': '" + url + "' must not have a path (put the topic prefix in 'topicPrefix')");
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("field 'url': '" + url + "' is not a URL: " + e.getReason());
        }
        if (topicPrefix == null) topicPrefix = DEFAULT_PREFIX;
        if (topicPrefix.isEmpty() || topicPrefix.startsWith("/") || topicPrefix.endsWith("/") || topicPrefix.contains("+") || topicPrefix.contains("#")
                || topicPrefix.contains("//"))
            throw new IllegalArgumentException("field 'topicPrefix': '" + topicPrefix + "' must be topic levels like 'site/cams' (no leading or trailing '/', no wildcards)");
        if (qos == null) qos = 1;
        if (qos != 0 && qos != 1) throw new IllegalArgumentException("field 'qos' must be 0 or 1, got " + qos);
        if (maxInFlight == null) maxInFlight = 64;
        if (maxInFlight < 1 || maxInFlight > 65_535) throw new IllegalArgumentException("field 'maxInFlight' must be in [1, 65535], got " + maxInFlight);
        if (deliveryTimeoutMs == null) deliveryTimeoutMs = 120_000;
        if (deliveryTimeoutMs < 1) throw new IllegalArgumentException("field 'deliveryTimeoutMs' must be positive, got " + deliveryTimeoutMs);
        if (reconnectMinMs == null) reconnectMinMs = 500;
        if (reconnectMaxMs == null) reconnectMaxMs = Math.max(30_000, reconnectMinMs);
        if (reconnectMinMs < 1 || reconnectMaxMs < reconnectMinMs)
            throw new IllegalArgumentException("fields 'reconnectMinMs' (" + reconnectMinMs + ") and 'reconnectMaxMs' (" + reconnectMaxMs + ") must satisfy 1 <= min <= max");
        if (clientId != null && (clientId.isBlank() || clientId.length() > 23 * 8))
            throw new IllegalArgumentException("field 'clientId' must not be blank or longer than 184 characters");
        if (keepAliveS == null) keepAliveS = 10;
        if (keepAliveS < 1 || keepAliveS > 65_535) throw new IllegalArgumentException("field 'keepAliveS' must be in [1, 65535], got " + keepAliveS);
    }

    /** {@code tcp://host:port[/prefix][?qos=0]} of {@code --mqtt}. */
    public static MqttOutputConfig parseSpec(String spec) {
        if (spec == null || spec.isBlank()) throw new IllegalArgumentException("expected tcp://host:port[/prefix][?qos=0|1]");
        Integer qos = null;
        String s = spec;
        int q = s.indexOf('?');
        if (q >= 0) {
            for (String kv : s.substring(q + 1).split("&")) {
                if (kv.startsWith("qos=")) {
                    try {
                        qos = Integer.parseInt(kv.substring(4));
                    } catch (NumberFormatException e) {
                        throw new IllegalArgumentException("'" + kv + "' in '" + spec + "': qos must be 0 or 1");
                    }
                } else if (!kv.isEmpty()) throw new IllegalArgumentException("unknown option '" + kv + "' in '" + spec + "' (known: qos)");
            }
            s = s.substring(0, q);
        }
        int scheme = s.indexOf("://");
        int slash = scheme < 0 ? -1 : s.indexOf('/', scheme + 3);
        String url = slash < 0 ? s : s.substring(0, slash);
        String prefix = slash < 0 || slash == s.length() - 1 ? null : s.substring(slash + 1);
        return new MqttOutputConfig(url, prefix, qos, null, null, null, null, null, null);
    }
}
