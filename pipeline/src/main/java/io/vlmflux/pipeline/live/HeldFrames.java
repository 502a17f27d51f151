package io.vlmflux.pipeline.live;

import io.vlmflux.sources.Frame;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * The frames a live pipeline holds between its source and its session: sampled, grouped and queued, not yet handed to
 * {@code LiveSession.append} (which owns them from then on). The pipeline's operators close what they drop or discard;
 * this ledger closes what they lose. Reactor's ordered merge ({@code Flux.mergePriority}, reactor-core 3.7) clears
 * its queues WITHOUT the discard hook when a cancel arrives while its drain loop runs on another thread, so a queued
 * group could stay open forever; {@link #end()} at the end of the run closes whatever is still held, which keeps
 * "every frame is closed exactly once" true whatever the interleaving. Closed frames leave the ledger lazily.
 */
public final class HeldFrames {
    private final Set<Frame> held = Collections.newSetFromMap(new IdentityHashMap<>());
    private int pruneAt = 64;
    private boolean ended;

    /** Holds {@code f} until {@link #handOff} or its close; after {@link #end()} it is closed at once. Returns {@code f}. */
    public Frame hold(Frame f) {
        synchronized (this) {
            if (!ended) {
                if (held.size() >= pruneAt) {   // amortized: drop what the operators closed meanwhile
                    held.removeIf(Frame::isReleased);
                    pruneAt = Math.max(64, 2 * held.size());
                }
                held.add(f);
                return f;
            }
        }
        f.close();
        return f;
    }

    /**
     * Hands {@code group} to its consumer, which closes it from now on. False after {@link #end()}: the frames were
     * closed then, and the group must not be used.
     */
    public synchronized boolean handOff(List<Frame> group) {
        if (ended) return false;
        group.forEach(held::remove);
        return true;
    }

    /** Closes every frame still held (idempotent); frames held later are closed at once. */
    public void end() {
        List<Frame> open;
        synchronized (this) {
            ended = true;
            open = new ArrayList<>(held);
            held.clear();
        }
        open.forEach(Frame::close);   // Frame.close is idempotent: an operator may have closed some already
    }

    /** Frames in the ledger, closed ones not yet pruned included. */
    synchronized int size() { return held.size(); }

    /** Frames held and not yet closed. */
    synchronized int open() {
        int n = 0;
        for (Frame f : held) if (!f.isReleased()) n++;
        return n;
    }
}
