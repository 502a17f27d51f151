package io.vlmflux.demos.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.vlmflux.llm.ModelConfig;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The bytes a decode step reads, which the bench's roofline divides by: 16-bit and 4-bit Qwen2.5-7B. */
class WeightBytesPerTokenTest {
    private static final String QWEN25_7B = """
            {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
             "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
             "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": false,
             "hidden_act": "silu", "torch_dtype": "bfloat16"%s}""";

    static ModelConfig config(String extra) throws Exception {
        return ModelConfig.parse(new ObjectMapper().readTree(QWEN25_7B.formatted(extra)));
    }

    @Test
    void sixteenBitAndFourBitQwen25_7B() throws Exception {
        // per layer: q/k/v 4608 x 3584, o 3584 x 3584, gate/up 2 x 18944 x 3584, down 3584 x 18944 = 233,046,016 weights
        long linears = 28L * 233_046_016L;
        long normsAndHead = 28L * 2 * 2 * 3584 + 2L * (152_064L * 3584 + 3584);
        assertEquals(2 * linears + normsAndHead, LlmBench.weightBytesPerToken(config("")));
        ModelConfig awq = config(", \"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 128,"
                + " \"version\": \"gemm\", \"zero_point\": true}");
        // half a byte a weight plus a 4-byte (scale, zero) pair per 128 weights; norms and lm head stay bf16
        assertEquals(linears / 2 + 4 * (linears / 128) + normsAndHead, LlmBench.weightBytesPerToken(awq));
        assertEquals(4.557, LlmBench.weightBytesPerToken(awq) / 1e9, 0.001);
    }
}
