package io.vlmflux.llm;

import java.util.Arrays;
import java.util.Locale;

/**
 * Rotary-embedding settings of a text model, from either {@code rope_parameters} (nested layout) or
 * {@code rope_theta} + {@code rope_scaling} (flat hub layout).
 *
 * @param type          {@code default}, {@code linear} or {@code llama3} (M-RoPE is {@code default} with a section)
 * @param theta         base
 * @param factor        scaling factor (linear, llama3)
 * @param mropeSection  frequencies per t/h/w axis (sum = head_dim/2) for Qwen2-VL M-RoPE, or null
 * @param mropeInterleaved the config's {@code mrope_interleaved} (Qwen3-VL: frequencies assigned t,h,w,t,h,w,...
 *                      instead of in three contiguous blocks); informational, the family decides the layout
 */
public record RopeConfig(String type, double theta, double factor, double lowFreqFactor, double highFreqFactor,
                         int originalMaxPositionEmbeddings, int[] mropeSection, boolean mropeInterleaved) {
    public RopeConfig {
        type = type == null ? "default" : type.toLowerCase(Locale.ROOT);
        if (type.equals("mrope")) type = "default";
        if (!(type.equals("default") || type.equals("linear") || type.equals("llama3")))
            throw new IllegalArgumentException("unsupported rope_type '" + type + "' (supported: default, linear, llama3, mrope)");
        if (!(theta > 0)) throw new IllegalArgumentException("rope_theta must be positive, got " + theta);
        if ((type.equals("linear") || type.equals("llama3")) && !(factor > 0))
            throw new IllegalArgumentException("rope " + type + " needs a positive factor, got " + factor);
        if (type.equals("llama3") && (originalMaxPositionEmbeddings <= 0 || !(highFreqFactor > lowFreqFactor)))
            throw new IllegalArgumentException("rope llama3 needs original_max_position_embeddings > 0 and high_freq_factor > low_freq_factor");
        if (mropeSection != null) {
            mropeSection = mropeSection.clone();
            for (int s : mropeSection) if (s < 0) throw new IllegalArgumentException("mrope_section " + Arrays.toString(mropeSection) + " has a negative entry");
        }
    }

    /** Settings without {@code mrope_interleaved}. */
    public RopeConfig(String type, double theta, double factor, double lowFreqFactor, double highFreqFactor,
                      int originalMaxPositionEmbeddings, int[] mropeSection) {
        this(type, theta, factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings, mropeSection, false);
    }

    public static RopeConfig defaults(double theta) { return new RopeConfig("default", theta, 1, 1, 4, 0, null); }

    public boolean isMrope() { return mropeSection != null; }

    @Override public int[] mropeSection() { return mropeSection == null ? null : mropeSection.clone(); }

    @Override public boolean equals(Object o) {
        return o instanceof RopeConfig r && r.type.equals(type) && r.theta == theta && r.factor == factor
                && r.lowFreqFactor == lowFreqFactor && r.highFreqFactor == highFreqFactor
                && r.originalMaxPositionEmbeddings == originalMaxPositionEmbeddings && Arrays.equals(r.mropeSection, mropeSection)
                && r.mropeInterleaved == mropeInterleaved;
    }

    @Override public int hashCode() { return type.hashCode() * 31 + Double.hashCode(theta) * 7 + Arrays.hashCode(mropeSection); }

    @Override public String toString() {
        return "RopeConfig[" + type + ", theta=" + theta + (type.equals("default") ? "" : ", factor=" + factor)
                + (mropeSection == null ? "" : ", mrope_section=" + Arrays.toString(mropeSection)) + (mropeInterleaved ? ", interleaved" : "") + "]";
    }
}
