package io.vlmflux.llm.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * A chat template is untrusted: none of these escapes may reach a Java object, class, file or resource, and every
 * resource bomb must end fast with an error naming the template and the limit. With Jinjava the first one wrote a
 * file through {@code ____int3rpr3t3r____.config.objectMapper}.
 */
class ChatTemplateSandboxTest {
    static final List<ChatMessage> CONV = List.of(ChatMessage.user("hi"));

    @Test
    void jinjavaObjectMapperReproducerWritesNothing(@TempDir Path dir) throws Exception {
        Path target = dir.resolve("pwned.txt");
        String escape = "{% set om = ____int3rpr3t3r____.config.objectMapper %}{% set tf = om.getTypeFactory() %}"
                + "{% set f = om.readValue('\"" + target + "\"', tf.constructFromCanonical('java.io.File')) %}"
                + "{% set enc = om.readValue('\"UTF8\"', tf.constructFromCanonical('com.fasterxml.jackson.core.JsonEncoding')) %}"
                + "{% set g = om.getFactory().createGenerator(f, enc) %}{% set a = g.writeRaw('x') %}{% set b = g.close() %}";
        Path model = dir.resolve("model");
        Files.createDirectories(model);
        Files.writeString(model.resolve("chat_template.jinja"), escape + "{{ messages[0].content }}");
        ChatTemplate tpl = ChatTemplate.load(model).orElseThrow();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> tpl.render(CONV, true));
        assertTrue(e.getMessage().contains("chat_template.jinja") && e.getMessage().contains("'____int3rpr3t3r____' is undefined"),
                e.getMessage());
        assertFalse(Files.exists(target), "the template wrote " + target);
    }

    /** Each either fails with a clear error or renders nothing from the host; none yields a Java object. */
    @ParameterizedTest
    @ValueSource(strings = {
            "{{ ''.getClass() }}", "{{ ''.getClass().forName('java.lang.Runtime') }}", "{{ ''.__class__.__mro__ }}",
            "{{ messages.class }}", "{{ messages.getClass().getClassLoader() }}", "{{ x.class.forName('java.io.File') }}",
            "{{ raise_exception.__globals__ }}", "{{ ''.__init__.__globals__ }}", "{{ ().__class__.__base__.__subclasses__() }}",
            "{{ messages | map(attribute='class') | list }}", "{{ messages | map(attribute='__class__') | first }}",
            "{{ messages[0] | attr('__class__') }}", "{{ namespace().__class__ }}", "{{ range.__self__ }}",
            "{{ lipsum.__globals__ }}", "{{ cycler.__init__ }}", "{{ self }}", "{{ config }}", "{{ request }}",
            "{{ ____int3rpr3t3r____ }}", "{{ messages[0].content.getBytes() }}", "{{ 'a'.toString() }}",
            "{{ messages.append(1) }}", "{{ {}.update(a=1) }}", "{{ {}.setdefault('a', 1) }}",
    })
    void noHostObjectIsReachable(String template) {
        ChatTemplate tpl = ChatTemplate.of(template, null, null);
        try {
            String out = tpl.render(CONV, false);
            assertFalse(out.contains("java.") || out.contains("class ") || out.contains("@") || out.contains("<built-in"), out);
            assertTrue(out.isEmpty() || out.matches("[\\[\\]'a-zA-Z, ]*"), out);
        } catch (IllegalArgumentException e) {
            assertTrue(e.getMessage().startsWith("chat template of <string>"), e.getMessage());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"{% include 'x.jinja' %}", "{% import 'x' as y %}", "{% extends 'base.html' %}",
            "{% from 'x' import y %}", "{% include '/etc/passwd' %}", "{% block b %}{% endblock %}"})
    void loadingTagsAreSyntaxErrors(String template) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.of("line\n" + template, null, null));
        assertTrue(e.getMessage().contains("<string>") && e.getMessage().contains("line 2")
                && e.getMessage().contains("cannot load or define other templates"), e.getMessage());
    }

    @Test
    void parseErrorsNameSourceAndLine(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("chat_template.jinja"), "ok\n{% if x %}\n{{ 1 + }}\n{% endif %}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.load(dir));
        assertTrue(e.getMessage().contains(dir.resolve("chat_template.jinja").toString()) && e.getMessage().contains("line 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.of("{% for x in y %}never closed", null, null));
        assertTrue(e.getMessage().contains("endfor"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> ChatTemplate.of("{{ " + "(".repeat(500) + "1" + ")".repeat(500) + " }}", null, null));
        assertTrue(e.getMessage().contains("nesting deeper than"), e.getMessage());
    }

    /** Resource bombs: each must fail within the limits, well before the test's own timeout. */
    @ParameterizedTest
    @ValueSource(strings = {
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}|macro calls nested deeper",
            "{% for i in range(10**9) %}x{% endfor %}|a list of 1000000000 items",
            "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}{% endfor %}{% endfor %}{% endfor %}|evaluation steps",
            "{{ 'x' * 10**8 }}|exceeds the limit of 4194304",
            "{{ 'x' * 10**18 }}|exceeds the limit",
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}|exceeds the limit of 4194304",
            "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}|exceeds the limit of 4194304",
            "{% for i in range(100000) %}{{ 'y' * 100 }}{% endfor %}|output exceeds the limit",
            "{{ [1] * 10**9 }}|a list of 1000000000 items",
            "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}|items exceeds the limit",
            "{{ 2 ** 10 ** 10 }}|integer overflow",
            "{{ 'ab' | center(10**9) }}|exceeds the limit",
            "{{ 'a\\nb' | indent(10**12) }}|exceeds the limit",
    })
    void bombsEndFastWithAClearError(String spec) {
        String template = spec.substring(0, spec.lastIndexOf('|'));
        String expected = spec.substring(spec.lastIndexOf('|') + 1);
        ChatTemplate tpl = ChatTemplate.of(template, null, null);
        IllegalArgumentException e = assertTimeoutPreemptively(Duration.ofSeconds(10),
                () -> assertThrows(IllegalArgumentException.class, () -> tpl.render(CONV, false)));
        assertTrue(e.getMessage().startsWith("chat template of <string>") && e.getMessage().contains(expected), e.getMessage());
    }

    @Test
    void wallTimeIsBounded() {
        // ~10^6 cheap steps allowed, but a 50 ms budget: the clock stops it first.
        ChatTemplate tpl = ChatTemplate.of("{% for i in range(999999) %}{% set x = i|string|length %}{% endfor %}", null, null)
                .withLimits(new TemplateRenderer.Limits(4 << 20, 10_000_000, 64, 50, 1_000_000));
        long t0 = System.nanoTime();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> tpl.render(CONV, false));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(e.getMessage().contains("render time limit of 50 ms"), e.getMessage());
        assertTrue(ms < 2_000, "took " + ms + " ms");
    }

    @Test
    void variablesOfOtherTypesAreRejected() {
        ChatTemplate tpl = ChatTemplate.of("{{ x }}", null, null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> tpl.render(CONV, false, Map.of("x", new java.io.File("/tmp"))));
        assertTrue(e.getMessage().contains("java.io.File") && e.getMessage().contains("x"), e.getMessage());
        assertEquals("[1, 'a', None]", tpl.render(CONV, false, Map.of("x", java.util.Arrays.asList(1, "a", null))));
    }
}
