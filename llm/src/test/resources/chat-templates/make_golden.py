#!/usr/bin/env python3
"""Renders every *.jinja here with the Jinja2 environment transformers builds for chat templates
(transformers.utils.chat_template_utils._compile_jinja_template: ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True, extensions=[AssistantTracker, loopcontrols]), its tojson, raise_exception, strftime_now) over a
fixed set of conversations, and writes golden.json. ChatTemplateGoldenTest renders the same cases in Java and
compares exactly. strftime_now is pinned to 2024-07-26 10:30:05 so the goldens are stable.

Run from this folder: python3 make_golden.py   (needs jinja2 >= 3.1; made with 3.1.6)
"""
import json
import pathlib
from datetime import datetime

import jinja2
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

NOW = datetime(2024, 7, 26, 10, 30, 5)

# bos/eos of each template's tokenizer_config.json (ChatTemplate.of(template, bos, eos) in the Java test).
TOKENS = {
    "qwen2-vl": (None, "<|im_end|>"),
    "qwen2-vl-video": (None, "<|im_end|>"),
    "qwen3": (None, "<|im_end|>"),
    "llama3": ("<|begin_of_text|>", "<|end_of_text|>"),
    "llama3_1": ("<|begin_of_text|>", "<|eot_id|>"),
    "gemma3": ("<bos>", "<end_of_turn>"),
    "deepseek_v3": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "features": ("<s>", "</s>"),
}


class Generation(Extension):
    """transformers' AssistantTracker without the tracking: {% generation %}body{% endgeneration %} renders body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "Hello!"}
ASSISTANT = {"role": "assistant", "content": "Hi! How can I help?"}
USER2 = {"role": "user", "content": "  What's 2+2?\nAnswer \"briefly\".  "}
IMAGE = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the image?"}]}
IMAGES = {"role": "user", "content": [{"type": "text", "text": "Compare "}, {"type": "image"},
                                      {"type": "text", "text": " and "}, {"type": "image"}]}
VIDEO = {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Describe the clip."}]}
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"},
                                                   "unit": {"type": "string", "enum": ["c", "f"]}},
                   "required": ["city"]}}}]
CALL_DICT = {"role": "assistant", "content": "", "tool_calls": [
    {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]}
CALL_STR = {"role": "assistant", "content": None, "tool_calls": [
    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
    {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}
TOOL_RESULT = {"role": "tool", "content": "{\"temp\": 21.5}"}
TOOL_RESULT2 = {"role": "tool", "content": "{\"temp\": 3}"}
FINAL = {"role": "assistant", "content": "It is 21.5 °C in Paris."}
THINK = {"role": "assistant", "content": "<think>\nThe user greets.\n</think>\n\nHello there."}

CONVERSATIONS = {
    "user": ([USER], {}),
    "system_user": ([SYSTEM, USER], {}),
    "multi_turn": ([SYSTEM, USER, ASSISTANT, USER2], {}),
    "no_system_multi": ([USER, ASSISTANT, USER2], {}),
    "image": ([IMAGE], {}),
    "images_system": ([SYSTEM, IMAGES, ASSISTANT], {}),
    "video": ([VIDEO], {}),
    "tools_dict_args": ([SYSTEM, USER, CALL_DICT, TOOL_RESULT, FINAL], {"tools": TOOLS}),
    "tools_str_args": ([USER, CALL_STR, TOOL_RESULT, TOOL_RESULT2, FINAL], {"tools": TOOLS}),
    "tools_no_system": ([USER], {"tools": TOOLS}),
    "thinking": ([USER, THINK, USER2], {}),
    "thinking_last": ([USER, THINK], {}),
    "thinking_off": ([USER], {"enable_thinking": False}),
    "date_string": ([USER], {"date_string": "01 Jan 2025"}),
}


def main():
    here = pathlib.Path(__file__).parent
    env = environment()
    out = {"jinja2": jinja2.__version__, "now": NOW.isoformat(), "templates": {}}
    for path in sorted(here.glob("*.jinja")):
        name = path.stem
        bos, eos = TOKENS[name]
        text = path.read_text(encoding="utf-8")
        template = env.from_string(text)
        cases = []
        for conv, (messages, extra) in CONVERSATIONS.items():
            for agp in (True, False):
                variables = {"messages": messages, "add_generation_prompt": agp, **extra}
                case = {"name": f"{conv}/agp={agp}", "variables": variables}
                try:
                    # as transformers' render_jinja_template: tools and documents are always passed (None if absent)
                    context = {"bos_token": bos or "", "eos_token": eos or "", "tools": None, "documents": None, **variables}
                    case["output"] = template.render(**context)
                except Exception as e:  # the Java side must fail too; raise_exception messages must match
                    case["error"] = str(e)
                    case["error_type"] = type(e).__name__
                cases.append(case)
        out["templates"][name] = {"file": path.name, "bos_token": bos, "eos_token": eos, "cases": cases}
    (here / "golden.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for name, t in out["templates"].items():
        errors = sum("error" in c for c in t["cases"])
        print(f"{name}: {len(t['cases'])} cases, {errors} errors")


if __name__ == "__main__":
    main()
