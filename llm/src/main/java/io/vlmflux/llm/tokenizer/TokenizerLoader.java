package io.vlmflux.llm.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalInt;
import java.util.function.UnaryOperator;
import java.util.regex.Pattern;

/** Reads {@code tokenizer.json} / {@code tokenizer_config.json} into a {@link Tokenizer}; every error names the file. */
final class TokenizerLoader {
    private static final System.Logger LOG = System.getLogger("vlmflux.tokenizer");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** Token ids must be below this (2^24; published vocabularies stay under 2^18): the id table is an array. */
    static final int MAX_TOKEN_ID = 1 << 24;

    private TokenizerLoader() {}

    /** An id from {@code n}: an integer in [0, MAX_TOKEN_ID), else an exception naming the file, what and the value. */
    private static int tokenId(Path file, String what, JsonNode n) {
        if (n == null || !n.isIntegralNumber() || !n.canConvertToLong() || n.asLong() < 0 || n.asLong() >= MAX_TOKEN_ID)
            throw new TokenizerException(file + ": " + what + " has id " + n + "; ids must be integers in [0, " + MAX_TOKEN_ID + ")");
        return n.asInt();
    }

    /** Parses a JSON file; missing file and bad JSON become {@link TokenizerException}s naming it. */
    static JsonNode readJson(Path file) {
        try {
            return JSON.readTree(file.toFile());
        } catch (NoSuchFileException | java.io.FileNotFoundException e) {
            throw new TokenizerException(file + " not found");
        } catch (JsonProcessingException e) {
            throw new TokenizerException(file + " is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new TokenizerException("cannot read " + file + ": " + e, e);
        }
    }

    static Tokenizer load(Path modelDir) {
        Path file = Files.isDirectory(modelDir) ? modelDir.resolve("tokenizer.json") : modelDir;
        Path dir = file.toAbsolutePath().getParent();
        if (!Files.isRegularFile(file))
            throw new TokenizerException("tokenizer.json not found: " + file
                    + (Files.isDirectory(modelDir) ? "" : " (expected a model folder or a tokenizer.json file)"));
        long t0 = System.nanoTime();
        JsonNode root = readJson(file);
        JsonNode model = root.get("model");
        if (!root.isObject() || model == null || !model.isObject())
            throw new TokenizerException(file + " is not a Hugging Face tokenizer.json (no \"model\" object)");
        String type = model.path("type").asText(model.has("merges") ? "BPE" : "");
        if (!type.equals("BPE"))
            throw new TokenizerException(file + ": unsupported tokenizer model type '" + type
                    + "' (only byte-level BPE is supported, as used by Qwen, Llama 3, GPT-2)");
        if (!mentionsByteLevel(root.get("pre_tokenizer")) && !mentionsByteLevel(root.get("decoder")))
            throw new TokenizerException(file + ": BPE without a ByteLevel pre-tokenizer/decoder (e.g. SentencePiece"
                    + " style with byte_fallback) is not supported; only byte-level BPE is");
        for (String f : List.of("continuing_subword_prefix", "end_of_word_suffix")) {
            JsonNode v = model.get(f);
            if (v != null && !v.isNull() && !v.asText().isEmpty())
                throw new TokenizerException(file + ": BPE option " + f + "='" + v.asText() + "' is not supported");
        }

        // Vocabulary.
        JsonNode vocabNode = model.get("vocab");
        if (vocabNode == null || !vocabNode.isObject())
            throw new TokenizerException(file + ": model.vocab is missing or not an object");
        if (vocabNode.isEmpty())
            throw new TokenizerException(file + ": model.vocab is empty; a tokenizer needs at least the 256 byte-level tokens");
        Map<String, Integer> vocab = new HashMap<>(vocabNode.size() * 2);
        int maxId = -1;
        for (Iterator<Map.Entry<String, JsonNode>> it = vocabNode.fields(); it.hasNext(); ) {
            var e = it.next();
            int id = tokenId(file, "model.vocab entry '" + e.getKey() + "'", e.getValue());
            vocab.put(e.getKey(), id);
            maxId = Math.max(maxId, id);
        }

        // Merges: ["a","b"] pairs or "a b" strings.
        JsonNode mergesNode = model.get("merges");
        if (mergesNode == null || !mergesNode.isArray())
            throw new TokenizerException(file + ": model.merges is missing or not an array");
        LongLongMap merges = new LongLongMap(mergesNode.size());
        int rank = 0;
        for (JsonNode m : mergesNode) {
            String a, b;
            if (m.isArray() && m.size() == 2) { a = m.get(0).asText(); b = m.get(1).asText(); }
            else if (m.isTextual()) {
                String s = m.asText();
                int sp = s.indexOf(' ');
                if (sp <= 0 || s.indexOf(' ', sp + 1) >= 0)
                    throw new TokenizerException(file + ": model.merges entry #" + rank + " '" + s + "' is not of the form 'a b'");
                a = s.substring(0, sp); b = s.substring(sp + 1);
            } else throw new TokenizerException(file + ": model.merges entry #" + rank + " is neither [a, b] nor \"a b\": " + m);
            Integer ia = vocab.get(a), ib = vocab.get(b), im = vocab.get(a + b);
            if (ia == null || ib == null || im == null)
                throw new TokenizerException(file + ": model.merges entry #" + rank + " (" + a + " " + b + ") uses a token missing from the vocab");
            merges.putIfAbsent(BpeModel.pairKey(ia, ib), ((long) rank << 32) | im);
            rank++;
        }
        boolean ignoreMerges = model.path("ignore_merges").asBoolean(false);

        // Added tokens (tokenizer.json), then any extra ones declared only in tokenizer_config.json.
        Map<Integer, AddedToken> added = new LinkedHashMap<>();
        for (JsonNode t : root.path("added_tokens")) {
            AddedToken at = addedToken(file, tokenId(file, "added_tokens entry " + t.path("content"), t.get("id")), t);
            added.put(at.id(), at);
        }
        Path configFile = dir.resolve("tokenizer_config.json");
        JsonNode config = Files.isRegularFile(configFile) ? readJson(configFile) : null;
        if (config != null) {
            for (Iterator<Map.Entry<String, JsonNode>> it = config.path("added_tokens_decoder").fields(); it.hasNext(); ) {
                var e = it.next();
                int id;
                try { id = Integer.parseInt(e.getKey()); } catch (NumberFormatException ex) { continue; }
                if (id < 0 || id >= MAX_TOKEN_ID)
                    throw new TokenizerException(configFile + ": added_tokens_decoder key '" + e.getKey() + "' is not an id in [0, " + MAX_TOKEN_ID + ")");
                if (!added.containsKey(id)) added.put(id, addedToken(configFile, id, e.getValue()));
            }
        }
        for (AddedToken at : added.values()) maxId = Math.max(maxId, at.id());

        String[] tokens = new String[maxId + 1];
        boolean[] special = new boolean[maxId + 1];
        Map<String, Integer> ids = new HashMap<>(vocab);
        for (var e : vocab.entrySet()) tokens[e.getValue()] = e.getKey();
        for (AddedToken at : added.values()) {
            tokens[at.id()] = at.content();
            special[at.id()] = at.special();
            ids.put(at.content(), at.id());
        }

        List<UnaryOperator<String>> normalizers = new ArrayList<>();
        normalizer(file, root.get("normalizer"), normalizers, "normalizer");
        List<PreTokenizer.Step> steps = new ArrayList<>();
        preTokenizer(file, root.get("pre_tokenizer"), steps, "pre_tokenizer");

        // Post-processor: what encode(text, true) adds around the sequence.
        List<Integer> pre = new ArrayList<>(), post = new ArrayList<>();
        postProcessor(file, root.get("post_processor"), pre, post, "post_processor");
        for (int id : pre) if (id < 0 || id >= tokens.length)
            throw new TokenizerException(file + ": post_processor adds token id " + id + ", outside the vocabulary [0, " + tokens.length + ")");
        for (int id : post) if (id < 0 || id >= tokens.length)
            throw new TokenizerException(file + ": post_processor adds token id " + id + ", outside the vocabulary [0, " + tokens.length + ")");

        OptionalInt bos = OptionalInt.empty(), eos = OptionalInt.empty(), pad = OptionalInt.empty();
        if (config != null) {
            bos = specialTokenId(configFile, config, "bos_token", ids);
            eos = specialTokenId(configFile, config, "eos_token", ids);
            pad = specialTokenId(configFile, config, "pad_token", ids);
            // transformers' Llama-style tokenizers honour add_bos_token/add_eos_token when the post-processor adds
            // nothing itself.
            if (pre.isEmpty() && config.path("add_bos_token").asBoolean(false) && bos.isPresent()) pre.add(bos.getAsInt());
            if (post.isEmpty() && config.path("add_eos_token").asBoolean(false) && eos.isPresent()) post.add(eos.getAsInt());
        }

        Tokenizer tok = new Tokenizer(file, tokens, special, ids, new BpeModel(vocab, merges, ignoreMerges),
                new ArrayList<>(added.values()), normalizers, new PreTokenizer(steps),
                pre.stream().mapToInt(Integer::intValue).toArray(), post.stream().mapToInt(Integer::intValue).toArray(),
                bos, eos, pad);
        LOG.log(System.Logger.Level.DEBUG, () -> String.format(Locale.ROOT, "loaded %s: %d ids, %d merges in %.0f ms",
                file, tokens.length, merges.size(), (System.nanoTime() - t0) / 1e6));
        return tok;
    }

    private static AddedToken addedToken(Path file, int id, JsonNode t) {
        String content = t.path("content").asText(null);
        if (id < 0 || content == null)
            throw new TokenizerException(file + ": added token without id/content: " + t);
        return new AddedToken(id, content, t.path("special").asBoolean(false), t.path("lstrip").asBoolean(false),
                t.path("rstrip").asBoolean(false), t.path("single_word").asBoolean(false),
                t.path("normalized").asBoolean(!t.path("special").asBoolean(false)));
    }

    /** A {@code *_token} entry of tokenizer_config.json: a string, an AddedToken object, or null. */
    static String tokenString(JsonNode config, String key) {
        JsonNode v = config.get(key);
        if (v == null || v.isNull()) return null;
        if (v.isTextual()) return v.asText();
        if (v.isObject() && v.path("content").isTextual()) return v.path("content").asText();
        return null;
    }

    private static OptionalInt specialTokenId(Path file, JsonNode config, String key, Map<String, Integer> ids) {
        String s = tokenString(config, key);
        if (s == null) return OptionalInt.empty();
        Integer id = ids.get(s);
        if (id == null) {
            LOG.log(System.Logger.Level.WARNING, file + ": " + key + " '" + s + "' is not a known token; ignored");
            return OptionalInt.empty();
        }
        return OptionalInt.of(id);
    }

    private static boolean mentionsByteLevel(JsonNode n) {
        if (n == null || n.isNull()) return false;
        if ("ByteLevel".equals(n.path("type").asText())) return true;
        for (String k : List.of("pretokenizers", "decoders")) for (JsonNode c : n.path(k)) if (mentionsByteLevel(c)) return true;
        return false;
    }

    private static void normalizer(Path file, JsonNode n, List<UnaryOperator<String>> out, String at) {
        if (n == null || n.isNull()) return;
        String type = n.path("type").asText();
        switch (type) {
            case "Sequence" -> { int i = 0; for (JsonNode c : n.path("normalizers")) normalizer(file, c, out, at + ".normalizers[" + i++ + "]"); }
            case "NFC" -> out.add(s -> normalize(s, Normalizer.Form.NFC));
            case "NFD" -> out.add(s -> normalize(s, Normalizer.Form.NFD));
            case "NFKC" -> out.add(s -> normalize(s, Normalizer.Form.NFKC));
            case "NFKD" -> out.add(s -> normalize(s, Normalizer.Form.NFKD));
            case "Lowercase" -> out.add(s -> s.toLowerCase(Locale.ROOT));
            case "Replace" -> {
                Pattern p = pattern(file, n.get("pattern"), "normalizer Replace");
                String content = java.util.regex.Matcher.quoteReplacement(n.path("content").asText());
                out.add(s -> p.matcher(s).replaceAll(content));
            }
            case "Prepend" -> {
                String pre = n.path("prepend").asText();
                out.add(s -> s.isEmpty() ? s : pre + s);
            }
            case "Strip" -> {
                boolean left = n.path("strip_left").asBoolean(true), right = n.path("strip_right").asBoolean(true);
                out.add(s -> left && right ? s.strip() : left ? s.stripLeading() : right ? s.stripTrailing() : s);
            }
            default -> throw new TokenizerException(file + ": " + at + ": unsupported normalizer type '" + type + "'");
        }
    }

    /** NFC etc., skipping the work for ASCII (already normalized in every form). */
    private static String normalize(String s, Normalizer.Form form) {
        for (int i = 0; i < s.length(); i++)
            if (s.charAt(i) >= 0x80) return Normalizer.normalize(s, form);
        return s;
    }

    private static Pattern pattern(Path file, JsonNode p, String where) {
        if (p != null && p.has("Regex")) {
            String re = p.get("Regex").asText();
            try {
                return PreTokenizer.compile(re);
            } catch (java.util.regex.PatternSyntaxException e) {
                throw new TokenizerException(file + ": " + where + " regex cannot be compiled by java.util.regex: "
                        + e.getDescription() + " in " + re, e);
            }
        }
        if (p != null && p.has("String")) return Pattern.compile(Pattern.quote(p.get("String").asText()));
        throw new TokenizerException(file + ": " + where + " has no Regex/String pattern: " + p);
    }

    private static void preTokenizer(Path file, JsonNode n, List<PreTokenizer.Step> out, String at) {
        if (n == null || n.isNull()) return;
        String type = n.path("type").asText();
        switch (type) {
            case "Sequence" -> { int i = 0; for (JsonNode c : n.path("pretokenizers")) preTokenizer(file, c, out, at + ".pretokenizers[" + i++ + "]"); }
            case "Split" -> {
                String b = n.path("behavior").asText("Isolated");
                PreTokenizer.Behavior behavior = switch (b) {
                    case "Isolated" -> PreTokenizer.Behavior.ISOLATED;
                    case "Removed" -> PreTokenizer.Behavior.REMOVED;
                    case "MergedWithPrevious" -> PreTokenizer.Behavior.MERGED_WITH_PREVIOUS;
                    case "MergedWithNext" -> PreTokenizer.Behavior.MERGED_WITH_NEXT;
                    case "Contiguous" -> PreTokenizer.Behavior.CONTIGUOUS;
                    default -> throw new TokenizerException(file + ": unsupported Split behavior '" + b + "'");
                };
                out.add(new PreTokenizer.SplitStep(pattern(file, n.get("pattern"), "pre_tokenizer Split"), behavior,
                        n.path("invert").asBoolean(false)));
            }
            case "ByteLevel" -> {
                if (n.path("add_prefix_space").asBoolean(false)) out.add(new PreTokenizer.PrefixSpaceStep());
                if (n.path("use_regex").asBoolean(true))
                    out.add(new PreTokenizer.SplitStep(PreTokenizer.compile(PreTokenizer.GPT2_PATTERN),
                            PreTokenizer.Behavior.ISOLATED, false));
            }
            case "Digits" -> out.add(new PreTokenizer.SplitStep(PreTokenizer.compile("\\p{N}"),
                    n.path("individual_digits").asBoolean(false) ? PreTokenizer.Behavior.ISOLATED
                            : PreTokenizer.Behavior.CONTIGUOUS, false));
            default -> throw new TokenizerException(file + ": " + at + ": unsupported pre_tokenizer type '" + type + "'");
        }
    }

    private static void postProcessor(Path file, JsonNode n, List<Integer> pre, List<Integer> post, String at) {
        if (n == null || n.isNull()) return;
        String type = n.path("type").asText();
        switch (type) {
            case "ByteLevel" -> { } // only adjusts offsets
            case "Sequence" -> { int i = 0; for (JsonNode c : n.path("processors")) postProcessor(file, c, pre, post, at + ".processors[" + i++ + "]"); }
            case "TemplateProcessing" -> {
                boolean seenSequence = false;
                for (JsonNode item : n.path("single")) {
                    if (item.has("Sequence")) { seenSequence = true; continue; }
                    JsonNode st = item.get("SpecialToken");
                    if (st == null) throw new TokenizerException(file + ": unknown TemplateProcessing item " + item);
                    String name = st.path("id").asText();
                    JsonNode spec = n.path("special_tokens").get(name);
                    if (spec == null || !spec.path("ids").isArray())
                        throw new TokenizerException(file + ": TemplateProcessing uses '" + name
                                + "' which is not in its special_tokens");
                    for (JsonNode id : spec.path("ids")) (seenSequence ? post : pre).add(tokenId(file, "post_processor special token '" + name + "'", id));
                }
            }
            case "RobertaProcessing", "BertProcessing" -> {
                pre.add(tokenId(file, "post_processor cls", n.path("cls").get(1)));
                post.add(tokenId(file, "post_processor sep", n.path("sep").get(1)));
            }
            default -> throw new TokenizerException(file + ": " + at + ": unsupported post_processor type '" + type + "'");
        }
    }
}
