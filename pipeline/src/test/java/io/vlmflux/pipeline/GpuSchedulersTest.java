package io.vlmflux.pipeline;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import reactor.core.publisher.Flux;
import reactor.core.scheduler.Scheduler;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import static org.junit.jupiter.api.Assertions.*;

class GpuSchedulersTest {
    @AfterEach
    void tearDown() {
        GpuSchedulers.disposeAll();
    }

    @Test
    void oneNamedThreadPerDeviceAndStream() {
        Scheduler g0 = GpuSchedulers.forDevice(0);
        assertSame(g0, GpuSchedulers.forDevice(0));
        assertSame(g0, GpuSchedulers.forStream(0, 0));
        assertNotSame(g0, GpuSchedulers.forStream(0, 1));
        assertNotSame(g0, GpuSchedulers.forDevice(1));

        Set<String> threads = ConcurrentHashMap.newKeySet();
        List<Integer> devices = Flux.range(0, 50).subscribeOn(reactor.core.scheduler.Schedulers.parallel())
                .transform(Stages.onGpu(g0))
                .map(i -> {
                    GpuSchedulers.assertOnGpuThread(0);
                    threads.add(Thread.currentThread().getName());
                    return GpuSchedulers.currentDevice();
                })
                .collectList().block(Duration.ofSeconds(5));
        assertEquals(Set.of("vlmflux-gpu0-s0"), threads);
        assertTrue(devices.stream().allMatch(d -> d == 0));
        String name = Flux.just(1).publishOn(GpuSchedulers.forStream(1, 2), 1).map(i -> Thread.currentThread().getName()).blockLast();
        assertEquals("vlmflux-gpu1-s2", name);
    }

    @Test
    void assertHelperNamesTheThread() {
        var e = assertThrows(IllegalStateException.class, () -> GpuSchedulers.assertOnGpuThread(0));
        assertTrue(e.getMessage().contains("'" + Thread.currentThread().getName() + "'"), e.getMessage());
        assertThrows(IllegalStateException.class, GpuSchedulers::assertOnGpuThread);
        // Device 1's thread is not device 0's.
        Throwable wrong = Flux.just(1).publishOn(GpuSchedulers.forDevice(1), 1).map(i -> { GpuSchedulers.assertOnGpuThread(0); return i; })
                .onErrorResume(t -> Flux.error(t)).materialize().blockLast().getThrowable();
        assertNotNull(wrong);
        assertTrue(wrong.getMessage().contains("vlmflux-gpu1-s0"), wrong.getMessage());
    }

    @Test
    void disposeStopsAndANewOneIsCreatedOnDemand() {
        Scheduler g = GpuSchedulers.forDevice(3);
        GpuSchedulers.dispose(3, 0);
        assertTrue(g.isDisposed());
        Scheduler again = GpuSchedulers.forDevice(3);
        assertNotSame(g, again);
        assertFalse(again.isDisposed());
        assertEquals(3, (int) Flux.just(1).publishOn(again, 1).map(i -> GpuSchedulers.currentDevice()).blockLast());
    }

    @Test
    void rejectsNegativeIndices() {
        assertThrows(IllegalArgumentException.class, () -> GpuSchedulers.forDevice(-1));
        assertThrows(IllegalArgumentException.class, () -> GpuSchedulers.forStream(0, -2));
    }
}
