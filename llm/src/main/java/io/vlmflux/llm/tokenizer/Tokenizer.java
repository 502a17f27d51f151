package io.vlmflux.llm.tokenizer;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.function.UnaryOperator;

/**
 * Byte-level BPE tokenizer loaded from a Hugging Face {@code tokenizer.json} (+ {@code tokenizer_config.json} for
 * BOS/EOS/PAD and extra added tokens). Encoding: added/special tokens are cut out of the text first (leftmost-longest),
 * the rest is normalized, pre-tokenized (regex split + byte-level mapping) and merged by rank; decoding maps tokens
 * back to bytes and decodes UTF-8 lossily (invalid bytes become U+FFFD). Immutable and thread-safe; the per-pre-token
 * cache is concurrent.
 */
public final class Tokenizer {
    final Path source;
    private final String[] tokens;          // id -> token string (byte-level spelling for vocab tokens); null = hole
    private final byte[][] tokenBytes;      // id -> bytes it decodes to
    private final boolean[] special;
    private final Map<String, Integer> ids; // token string -> id (vocab and added)
    private final BpeModel bpe;
    private final AddedVocab rawAdded;      // added tokens matched on the raw text
    private final AddedVocab normAdded;     // added tokens matched after normalization
    private final List<UnaryOperator<String>> normalizers;
    private final PreTokenizer preTokenizer;
    private final int[] prefix, suffix;     // what the post-processor adds around a single sequence
    private final OptionalInt bos, eos, pad;

    Tokenizer(Path source, String[] tokens, boolean[] special, Map<String, Integer> ids, BpeModel bpe,
              List<AddedToken> added, List<UnaryOperator<String>> normalizers, PreTokenizer preTokenizer,
              int[] prefix, int[] suffix, OptionalInt bos, OptionalInt eos, OptionalInt pad) {
        this.source = source;
        this.tokens = tokens;
        this.special = special;
        this.ids = ids;
        this.bpe = bpe;
        this.rawAdded = new AddedVocab(added.stream().filter(t -> !t.normalized() || normalizers.isEmpty()).toList());
        this.normAdded = new AddedVocab(added.stream().filter(t -> t.normalized() && !normalizers.isEmpty()).toList());
        this.normalizers = List.copyOf(normalizers);
        this.preTokenizer = preTokenizer;
        this.prefix = prefix;
        this.suffix = suffix;
        this.bos = bos;
        this.eos = eos;
        this.pad = pad;
        this.tokenBytes = new byte[tokens.length][];
        for (int i = 0; i < tokens.length; i++) if (tokens[i] != null) tokenBytes[i] = ByteLevel.tokenBytes(tokens[i]);
    }

    /**
     * Loads {@code modelDir/tokenizer.json} and, when present, {@code modelDir/tokenizer_config.json}.
     *
     * @throws TokenizerException naming the file when it is missing, not JSON, not a tokenizer, or not byte-level BPE
     */
    public static Tokenizer load(Path modelDir) { return TokenizerLoader.load(modelDir); }

    /** Plain encode: no post-processor (no BOS); special/added tokens written in the text are matched. */
    public int[] encode(String text) { return encode(text, false); }

    /** Encode; with {@code addSpecial} the post-processor's tokens (e.g. Llama 3's BOS) are added. */
    public int[] encode(String text, boolean addSpecial) {
        IntList out = new IntList(text.length() / 3 + 4);
        if (addSpecial) for (int id : prefix) out.add(id);
        for (AddedVocab.Piece p : rawAdded.split(text)) {
            if (p.tokenId() >= 0) { out.add(p.tokenId()); continue; }
            String seg = text.substring(p.start(), p.end());
            for (UnaryOperator<String> nz : normalizers) seg = nz.apply(seg);
            if (normAdded.isEmpty()) { encodePlain(seg, out); continue; }
            for (AddedVocab.Piece q : normAdded.split(seg)) {
                if (q.tokenId() >= 0) out.add(q.tokenId());
                else encodePlain(seg.substring(q.start(), q.end()), out);
            }
        }
        if (addSpecial) for (int id : suffix) out.add(id);
        return out.toArray();
    }

    private void encodePlain(String normalized, IntList out) {
        preTokenizer.split(normalized, piece -> bpe.encode(piece, out));
    }

    /** Decodes keeping special tokens; invalid UTF-8 becomes U+FFFD; ids without a token are skipped (as HF does). */
    public String decode(int[] ids) { return decode(ids, false); }

    public String decode(int[] ids, boolean skipSpecial) {
        int total = 0;
        for (int id : ids) { byte[] b = bytesOf(id, skipSpecial); if (b != null) total += b.length; }
        byte[] all = new byte[total];
        int o = 0;
        for (int id : ids) {
            byte[] b = bytesOf(id, skipSpecial);
            if (b != null) { System.arraycopy(b, 0, all, o, b.length); o += b.length; }
        }
        StringBuilder sb = new StringBuilder(total);
        ByteLevel.decodeUtf8(all, 0, total, sb, true);
        return sb.toString();
    }

    /** Bytes of one id, or null when it has no token or is special and skipped. */
    byte[] bytesOf(int id, boolean skipSpecial) {
        if (id < 0 || id >= tokens.length || tokenBytes[id] == null) return null;
        if (skipSpecial && special[id]) return null;
        return tokenBytes[id];
    }

    /**
     * The bytes id {@code id} decodes to on its own (byte-level mapping undone; an added token's UTF-8 content), a
     * fresh copy; null for an id without a token.
     */
    public byte[] tokenBytes(int id) {
        byte[] b = bytesOf(id, false);
        return b == null ? null : b.clone();
    }

    /** Number of ids (vocab + added tokens): one more than the largest id. */
    public int vocabSize() { return tokens.length; }

    /** Id of a token string: an added/special token's content, or a vocab entry in its byte-level spelling. */
    public OptionalInt tokenId(String token) {
        Integer id = ids.get(token);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }

    /** Token string of an id (byte-level spelling for vocab entries, e.g. {@code "Ġworld"}). */
    public String token(int id) {
        if (id < 0 || id >= tokens.length || tokens[id] == null)
            throw new IllegalArgumentException("token id " + id + " is not in the vocabulary of " + source
                    + " (size " + tokens.length + ")");
        return tokens[id];
    }

    /** Text an id decodes to on its own (lossy when the token is part of a multi-byte character). */
    public String tokenText(int id) { return decode(new int[] {id}); }

    public boolean isSpecial(int id) { return id >= 0 && id < special.length && special[id]; }

    /** BOS from {@code tokenizer_config.json} ({@code bos_token}), when present and known. */
    public OptionalInt bosId() { return bos; }

    /** EOS from {@code tokenizer_config.json} ({@code eos_token}), when present and known. */
    public OptionalInt eosId() { return eos; }

    /** PAD from {@code tokenizer_config.json} ({@code pad_token}), when present and known. */
    public OptionalInt padId() { return pad; }

    /** Ids the post-processor puts before / after a single sequence with {@code encode(text, true)}. */
    public int[] specialPrefix() { return prefix.clone(); }
    public int[] specialSuffix() { return suffix.clone(); }

    /** A new incremental detokenizer for one sequence (keeps special tokens). */
    public StreamingDecoder streamingDecoder() { return new StreamingDecoder(this, false); }

    public StreamingDecoder streamingDecoder(boolean skipSpecial) { return new StreamingDecoder(this, skipSpecial); }

    /** The file this tokenizer came from. */
    public Path source() { return source; }

    @Override public String toString() {
        return "Tokenizer[" + source + ", " + tokens.length + " ids, bos=" + bos + ", eos=" + eos + "]";
    }

    static byte[] utf8(String s) { return s.getBytes(StandardCharsets.UTF_8); }

    static int[] concat(int[] a, int[] b) {
        int[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
