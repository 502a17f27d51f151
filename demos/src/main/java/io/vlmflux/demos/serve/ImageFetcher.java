package io.vlmflux.demos.serve;

import io.netty.resolver.AddressResolver;
import io.netty.resolver.AddressResolverGroup;
import io.netty.resolver.InetNameResolver;
import io.netty.resolver.InetSocketAddressResolver;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.Promise;
import reactor.core.publisher.Mono;
import reactor.core.scheduler.Schedulers;
import reactor.netty.http.client.HttpClient;

import java.io.ByteArrayOutputStream;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.function.Predicate;

/**
 * Fetches an {@code http(s)} image URL for a request, bounded: public addresses only (no loopback, private, link-local,
 * carrier-grade NAT, multicast or unique-local targets, checked on every address the name resolves to, and the
 * connection made only through a resolver that applies the same check, so a name cannot resolve to a public address
 * for the check and a private one for the connection), no redirects, no proxy, an {@code image/*} answer of at most
 * {@code maxBytes}, within {@code timeout}. Errors are 400s naming the request field and the URL.
 */
final class ImageFetcher {
    private final long maxBytes;
    private final Duration timeout;
    private final Predicate<InetAddress> allowed;
    private final HttpClient client;

    ImageFetcher(long maxBytes, Duration timeout) { this(maxBytes, timeout, ImageFetcher::isPublic); }

    /** {@code allowed} decides which addresses may be connected to (tests let loopback through). */
    ImageFetcher(long maxBytes, Duration timeout, Predicate<InetAddress> allowed) {
        this.maxBytes = maxBytes;
        this.timeout = timeout;
        this.allowed = allowed;
        this.client = HttpClient.create().resolver(new Filtering(allowed)).followRedirect(false).responseTimeout(timeout);
    }

    /** The image bytes at {@code url} ({@code field} names the request field in errors). */
    Mono<byte[]> fetch(String url, String field) {
        return Mono.fromCallable(() -> { check(url, field); return url; })
                .subscribeOn(Schedulers.boundedElastic())   // name resolution blocks
                .flatMap(u -> client.get().uri(u).response((res, body) -> {
                            int code = res.status().code();
                            if (code != 200) return Mono.error(bad(field, url, "answered HTTP " + code + (code / 100 == 3 ? " (redirects are not followed)" : "")));
                            String type = res.responseHeaders().get("Content-Type", "");
                            if (!type.toLowerCase(Locale.ROOT).startsWith("image/"))
                                return Mono.error(bad(field, url, "is '" + (type.isEmpty() ? "(no content type)" : type) + "', not an image/* type"));
                            String length = res.responseHeaders().get("Content-Length");
                            if (length != null && length.matches("\\d{1,18}") && Long.parseLong(length) > maxBytes)
                                return Mono.error(bad(field, url, "is " + length + " bytes; images are fetched up to " + maxBytes + " bytes"));
                            return body.reduceWith(ByteArrayOutputStream::new, (out, buf) -> {
                                int n = buf.readableBytes();
                                if (out.size() + (long) n > maxBytes) throw bad(field, url, "is over " + maxBytes + " bytes; images are fetched up to that");
                                byte[] b = new byte[n];
                                buf.getBytes(buf.readerIndex(), b);
                                out.write(b, 0, n);
                                return out;
                            }).map(ByteArrayOutputStream::toByteArray);
                        })
                        .next()
                        .timeout(timeout))
                .onErrorMap(e -> !(e instanceof ApiException), e -> bad(field, url, "could not be fetched: "
                        + (e instanceof java.util.concurrent.TimeoutException ? "no answer within " + timeout : e.getMessage())));
    }

    /** Refuses URLs that are not http(s) or whose host resolves to any address that is not allowed. */
    private void check(String url, String field) {
        URI u;
        try {
            u = new URI(url);
        } catch (java.net.URISyntaxException e) {
            throw bad(field, url, "is not a valid URL (" + e.getReason() + ")");
        }
        String scheme = u.getScheme() == null ? "" : u.getScheme().toLowerCase(Locale.ROOT);
        if (!scheme.equals("http") && !scheme.equals("https")) throw bad(field, url, "is not an http(s) URL");
        if (u.getHost() == null) throw bad(field, url, "has no host");
        if (u.getUserInfo() != null) throw bad(field, url, "carries credentials; they are not sent");
        String host = u.getHost().startsWith("[") ? u.getHost().substring(1, u.getHost().length() - 1) : u.getHost();
        InetAddress[] all;
        try {
            all = InetAddress.getAllByName(host);
        } catch (UnknownHostException e) {
            throw bad(field, url, "names an unknown host");
        }
        for (InetAddress a : all)
            if (!allowed.test(a)) throw bad(field, url, "resolves to " + a.getHostAddress() + ", a loopback, private or otherwise non-public address; such targets are not fetched");
    }

    private static ApiException bad(String field, String url, String what) {
        String shown = url.length() > 100 ? url.substring(0, 100) + "..." : url;
        return new ApiException(400, "invalid_request_error", "'" + field + "': the image URL " + shown + " " + what, field, "invalid_image_url");
    }

    /** True for globally routable unicast addresses. */
    static boolean isPublic(InetAddress a) {
        if (a.isAnyLocalAddress() || a.isLoopbackAddress() || a.isLinkLocalAddress() || a.isSiteLocalAddress() || a.isMulticastAddress())
            return false;
        byte[] b = a.getAddress();
        if (a instanceof Inet4Address) {
            int o0 = b[0] & 0xFF, o1 = b[1] & 0xFF;
            return !(o0 == 0 || o0 >= 240                       // "this network", reserved and broadcast
                    || (o0 == 100 && (o1 & 0xC0) == 64)         // 100.64.0.0/10 carrier-grade NAT
                    || (o0 == 192 && o1 == 0 && (b[2] & 0xFF) == 0)   // 192.0.0.0/24 protocol assignments
                    || (o0 == 198 && (o1 & 0xFE) == 18));       // 198.18.0.0/15 benchmarking
        }
        if (a instanceof Inet6Address) {
            if ((b[0] & 0xFE) == 0xFC) return false;            // fc00::/7 unique local
            boolean mapped = true;                              // ::ffff:a.b.c.d and ::a.b.c.d carry an IPv4 address
            for (int i = 0; i < 10; i++) mapped &= b[i] == 0;
            if (mapped && ((b[10] == 0 && b[11] == 0) || (b[10] == (byte) 0xFF && b[11] == (byte) 0xFF))) {
                try {
                    return isPublic(InetAddress.getByAddress(new byte[]{b[12], b[13], b[14], b[15]}));
                } catch (UnknownHostException e) {
                    return false;
                }
            }
            if ((b[0] & 0xFF) == 0x20 && (b[1] & 0xFF) == 0x02) return false;   // 2002::/16 6to4 embeds any IPv4 address
            if ((b[0] & 0xFF) == 0x00 && (b[1] & 0xFF) == 0x64 && (b[2] & 0xFF) == 0xFF && (b[3] & 0xFF) == 0x9B) return false;   // 64:ff9b::/96 NAT64
        }
        return true;
    }

    /** Resolves names with the system resolver and keeps only allowed addresses, so the connection uses checked ones. */
    private static final class Filtering extends AddressResolverGroup<InetSocketAddress> {
        private final Predicate<InetAddress> allowed;

        Filtering(Predicate<InetAddress> allowed) { this.allowed = allowed; }

        @Override protected AddressResolver<InetSocketAddress> newResolver(EventExecutor executor) {
            return new InetSocketAddressResolver(executor, new InetNameResolver(executor) {
                @Override protected void doResolve(String host, Promise<InetAddress> promise) {
                    try {
                        List<InetAddress> ok = allowedAddresses(host);
                        promise.setSuccess(ok.getFirst());
                    } catch (Exception e) {
                        promise.setFailure(e);
                    }
                }

                @Override protected void doResolveAll(String host, Promise<List<InetAddress>> promise) {
                    try {
                        promise.setSuccess(allowedAddresses(host));
                    } catch (Exception e) {
                        promise.setFailure(e);
                    }
                }
            });
        }

        private List<InetAddress> allowedAddresses(String host) throws UnknownHostException {
            List<InetAddress> ok = new ArrayList<>();
            for (InetAddress a : InetAddress.getAllByName(host)) {
                if (!allowed.test(a)) throw new UnknownHostException(host + " resolves to the non-public address " + a.getHostAddress());
                ok.add(a);
            }
            return ok;
        }
    }
}
