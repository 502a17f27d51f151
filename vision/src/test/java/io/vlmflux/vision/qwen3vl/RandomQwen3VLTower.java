package io.vlmflux.vision.qwen3vl;

import io.vlmflux.cuda.DType;
import io.vlmflux.cuda.safetensors.SafetensorsWriter;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/**
 * A random bf16 Qwen3-VL vision tower written as a Hugging Face folder ({@code config.json} + {@code model.safetensors}),
 * for tests of shapes the fixture does not have. Values depend only on the tensor name (after the optional swap of the
 * two DeepStack mergers), so two towers of one shape hold the same weights.
 *
 * @param prefix      tensor name prefix ({@code visual.} or {@code model.visual.})
 * @param deepstack   {@code deepstack_visual_indexes} as a JSON array; one merger per entry
 */
public record RandomQwen3VLTower(String modelType, String prefix, int depth, int width, int heads, int intermediate, int outHidden,
                                 int side, String deepstack) {

    /** Writes the tower into {@code dir} (created); {@code swapMergers}: mergers 0 and 1 trade weights. */
    public Path write(Path dir, boolean swapMergers) throws Exception {
        int wide = width * 4, mergers = deepstack.replaceAll("[\\[\\]\\s]", "").isEmpty() ? 0 : deepstack.split(",").length;
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("config.json"), """
                {"model_type": "%s", "text_config": {"hidden_size": %d},
                 "vision_config": {"depth": %d, "hidden_size": %d, "num_heads": %d, "intermediate_size": %d, "out_hidden_size": %d,
                  "num_position_embeddings": %d, "deepstack_visual_indexes": %s, "hidden_act": "gelu_pytorch_tanh",
                  "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2, "in_channels": 3}}
                """.formatted(modelType, outHidden, depth, width, heads, intermediate, outHidden, side * side, deepstack));
        SafetensorsWriter w = new SafetensorsWriter();
        java.util.function.BiConsumer<String, long[]> add = (t, shape) -> {
            String key = !swapMergers ? t : t.replace("list.0.", "list.X.").replace("list.1.", "list.0.").replace("list.X.", "list.1.");
            Random r = new Random(key.hashCode());
            boolean norm = t.endsWith("norm1.weight") || t.endsWith("norm2.weight") || t.endsWith("norm.weight");
            double sd = norm ? 0.05 : shape.length > 1 ? 0.08 : 0.02, mean = norm ? 1 : 0;
            w.add(prefix + t, DType.BF16, shape, i -> (float) (mean + r.nextGaussian() * sd));
        };
        add.accept("patch_embed.proj.weight", new long[]{width, 3, 2, 16, 16});
        add.accept("patch_embed.proj.bias", new long[]{width});
        add.accept("pos_embed.weight", new long[]{side * side, width});
        for (int b = 0; b < depth; b++) {
            String q = "blocks." + b + ".";
            for (String nn : new String[]{"norm1", "norm2"}) {
                add.accept(q + nn + ".weight", new long[]{width});
                add.accept(q + nn + ".bias", new long[]{width});
            }
            linear(add, q + "attn.qkv", 3 * width, width);
            linear(add, q + "attn.proj", width, width);
            linear(add, q + "mlp.linear_fc1", intermediate, width);
            linear(add, q + "mlp.linear_fc2", width, intermediate);
        }
        for (int k = -1; k < mergers; k++) {
            String mg = k < 0 ? "merger." : "deepstack_merger_list." + k + ".";
            int nw = k < 0 ? width : wide;
            add.accept(mg + "norm.weight", new long[]{nw});
            add.accept(mg + "norm.bias", new long[]{nw});
            linear(add, mg + "linear_fc1", wide, wide);
            linear(add, mg + "linear_fc2", outHidden, wide);
        }
        w.write(dir.resolve("model.safetensors"));
        return dir;
    }

    private static void linear(java.util.function.BiConsumer<String, long[]> add, String name, int rows, int cols) {
        add.accept(name + ".weight", new long[]{rows, cols});
        add.accept(name + ".bias", new long[]{rows});
    }
}
