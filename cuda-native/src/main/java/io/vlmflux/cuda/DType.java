package io.vlmflux.cuda;

import java.util.Locale;

/**
 * Element types of tensors, with their size in bytes and their safetensors spelling ({@code "BF16"}, {@code "F32"}...).
 * Compute code converts {@link #BF16} and {@link #F16} to float on the fly ({@link #bf16ToFloat}, {@link #f16ToFloat}).
 */
public enum DType {
    F64(8, "F64"), F32(4, "F32"), F16(2, "F16"), BF16(2, "BF16"),
    I64(8, "I64"), I32(4, "I32"), I16(2, "I16"), I8(1, "I8"), U8(1, "U8"), BOOL(1, "BOOL");

    private final int byteSize;
    private final String safetensorsName;

    DType(int byteSize, String safetensorsName) { this.byteSize = byteSize; this.safetensorsName = safetensorsName; }

    public int byteSize() { return byteSize; }

    public String safetensorsName() { return safetensorsName; }

    /** True for the types whose values can be read as float ({@code F32}, {@code F16}, {@code BF16}, {@code F64}). */
    public boolean isFloating() { return this == F32 || this == F16 || this == BF16 || this == F64; }

    /** The type named {@code s} in a safetensors header; {@link IllegalArgumentException} naming it when unknown. */
    public static DType fromSafetensors(String s) {
        if (s != null) {
            String u = s.toUpperCase(Locale.ROOT);
            for (DType d : values()) if (d.safetensorsName.equals(u)) return d;
        }
        throw new IllegalArgumentException("unsupported dtype '" + s + "' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
    }

    /** bfloat16 bits (the high half of a float32) to float. Exact. */
    public static float bf16ToFloat(short bits) { return Float.intBitsToFloat((bits & 0xffff) << 16); }

    /** float to bfloat16 bits, rounding to nearest even (NaN stays NaN). */
    public static short floatToBf16(float f) {
        int b = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) 0x7fc0;
        int rounding = 0x7fff + ((b >>> 16) & 1);
        return (short) ((b + rounding) >>> 16);
    }

    /** IEEE half bits to float. Exact. */
    public static float f16ToFloat(short bits) { return Float.float16ToFloat(bits); }

    /** float to IEEE half bits, rounding to nearest even. */
    public static short floatToF16(float f) { return Float.floatToFloat16(f); }
}
