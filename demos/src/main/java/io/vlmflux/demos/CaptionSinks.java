package io.vlmflux.demos;

import io.vlmflux.pipeline.config.KafkaOutputConfig;
import io.vlmflux.pipeline.config.MqttOutputConfig;
import io.vlmflux.pipeline.config.OutputConfig;
import io.vlmflux.pipeline.metrics.PipelineMetrics;
import io.vlmflux.sinks.SinkStage;
import io.vlmflux.sources.FrameSource;

import java.util.List;

/** {@code caption --kafka/--mqtt} and the config's {@code output.kafka/mqtt}: the Kafka/MQTT stage of the command. */
final class CaptionSinks {
    private CaptionSinks() {}

    /** The config's output with {@code --kafka} and {@code --mqtt} over its {@code kafka} and {@code mqtt}. */
    static OutputConfig output(OutputConfig config, Args a) {
        KafkaOutputConfig kafka = null;
        MqttOutputConfig mqtt = null;
        try {
            if (a.has("kafka")) kafka = KafkaOutputConfig.parseSpec(a.get("kafka"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--kafka " + a.get("kafka") + ": " + e.getMessage());
        }
        try {
            if (a.has("mqtt")) mqtt = MqttOutputConfig.parseSpec(a.get("mqtt"));
        } catch (IllegalArgumentException e) {
            throw new UsageException("--mqtt " + a.get("mqtt") + ": " + e.getMessage());
        }
        return config.withSinks(kafka, mqtt);
    }

    /** The sink stage (null when no Kafka/MQTT output is asked for); says where records go on stderr. */
    static SinkStage open(OutputConfig output, PipelineMetrics metrics, String prompt, boolean answers, List<FrameSource> sources) {
        SinkStage stage = SinkStage.open(output, metrics, prompt, answers, null);
        if (stage == null) return null;
        stage.sources(sources.stream().map(FrameSource::id).toList());
        if (output.kafka() != null)
            System.err.println("vlmflux: records to kafka " + output.kafka().brokers() + " topic " + output.kafka().topic() + " (key = source id)");
        if (output.mqtt() != null)
            System.err.println("vlmflux: records to mqtt " + output.mqtt().url() + " topics " + output.mqtt().topicPrefix() + "/SOURCE/TYPE, qos " + output.mqtt().qos());
        return stage;
    }
}
