package io.vlmflux.llm.constrain;

import io.vlmflux.llm.tokenizer.Tokenizer;

import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * A tokenizer's non-special tokens as byte strings sorted lexicographically (stored back to back), with each one's
 * common-prefix length with its predecessor and, per byte, the index of the first later token not sharing that prefix:
 * walking the sorted list through a byte automaton visits every distinct token prefix once (the implicit trie), and a
 * prefix that dies jumps past all tokens that share it. One per tokenizer (weakly cached); also holds
 * that tokenizer's cache of compiled constraints. Immutable apart from the synchronized cache.
 */
final class TokenVocabulary {
    private static final Map<Tokenizer, TokenVocabulary> BY_TOKENIZER = Collections.synchronizedMap(new WeakHashMap<>());
    static final int CACHE_SIZE = 64;
    /** Recursive (pushdown) constraints grow their parser state while they decode: fewer of them stay cached. */
    static final int GRAMMAR_CACHE_SIZE = 8;

    final int size;            // ids [0, size)
    final int[] sorted;        // token ids in byte order (non-special, non-empty only)
    final byte[][] bytes;      // by id; null where not a walkable token
    final int[] lcp;           // lcp[i]: common prefix length of sorted[i-1] and sorted[i]
    final byte[] flat;         // the sorted tokens' bytes back to back
    final int[] start;         // sorted token i occupies flat[start[i], start[i+1])
    final int[] skip;          // skip[start[i] + d]: first j > i whose common prefix with token i is at most d bytes
    final int maxLen;
    final int eos;             // -1: none
    private final Map<Object, Constraint> compiled = new LinkedHashMap<>(16, 0.75f, true) {
        @Override protected boolean removeEldestEntry(Map.Entry<Object, Constraint> e) { return size() > CACHE_SIZE; }
    };
    private final Map<Object, Constraint> grammars = new LinkedHashMap<>(16, 0.75f, true) {
        @Override protected boolean removeEldestEntry(Map.Entry<Object, Constraint> e) { return size() > GRAMMAR_CACHE_SIZE; }
    };

    private TokenVocabulary(Tokenizer t) {
        size = t.vocabSize();
        bytes = new byte[size][];
        int n = 0, max = 0;
        for (int id = 0; id < size; id++) {
            if (t.isSpecial(id)) continue;
            byte[] b = t.tokenBytes(id);
            if (b == null || b.length == 0) continue;
            bytes[id] = b;
            n++;
            max = Math.max(max, b.length);
        }
        Integer[] ids = new Integer[n];
        for (int id = 0, k = 0; id < size; id++) if (bytes[id] != null) ids[k++] = id;
        Arrays.sort(ids, (a, b) -> Arrays.compareUnsigned(bytes[a], bytes[b]));
        sorted = new int[n];
        lcp = new int[n];
        for (int i = 0; i < n; i++) {
            sorted[i] = ids[i];
            if (i > 0) {
                int m = Arrays.mismatch(bytes[ids[i - 1]], bytes[ids[i]]);
                lcp[i] = m < 0 ? bytes[ids[i]].length : m;
            }
        }
        maxLen = max;
        start = new int[n + 1];
        for (int i = 0; i < n; i++) start[i + 1] = start[i] + bytes[sorted[i]].length;
        flat = new byte[start[n]];
        for (int i = 0; i < n; i++) System.arraycopy(bytes[sorted[i]], 0, flat, start[i], start[i + 1] - start[i]);
        skip = new int[start[n]];
        for (int i = n - 1; i >= 0; i--)
            for (int d = 0; d < start[i + 1] - start[i]; d++)
                skip[start[i] + d] = i + 1 < n && lcp[i + 1] > d ? skip[start[i + 1] + d] : i + 1;
        eos = t.eosId().orElse(-1);
    }

    static TokenVocabulary of(Tokenizer t) {
        synchronized (BY_TOKENIZER) {
            return BY_TOKENIZER.computeIfAbsent(t, TokenVocabulary::new);
        }
    }

    synchronized Constraint cached(Object key) {
        Constraint c = compiled.get(key);
        return c != null ? c : grammars.get(key);
    }

    synchronized void cache(Object key, Constraint c) { (c instanceof GrammarConstraint ? grammars : compiled).put(key, c); }
}
