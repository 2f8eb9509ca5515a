"""IR -> HF Jinja chat template (``tokenizer.chat_template``).

The template is written so that its meaning does not depend on whitespace options: every tag
strips the source whitespace around it (``{%- -%}``) and all output comes from ``{{ '...' }}``
string literals and message contents, so ``trim_blocks``/``lstrip_blocks`` (HF) and engines
without them (llama.cpp) render the same bytes.  It uses only if/for/set, ``loop.first``,
``loop.index0``, ``|length``, ``|trim``, ``.lstrip()``/``.rstrip()`` (only for ``|lstrip``/``|rstrip``
formats) and ``raise_exception``: the subset every engine has.

BOS policy (HF convention): a ``{BOS}`` in the spec becomes ``{{ bos_token }}`` in the template,
and ``apply_chat_template`` tokenizes without adding special tokens, so BOS appears exactly where
the spec puts it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tmplc.ir import (CDATA_CLOSE, CDATA_OPEN, CDATA_TRIGGERS, THINK_END, THINK_START, ContentRule, DateToken, Fragment,
                      SpecialToken)

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.ir import ChatFormat

_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def jinja_string(s: str) -> str:
    """A single-quoted Jinja string literal for ``s``."""
    return "'" + "".join(_ESCAPES.get(c, c) for c in s) + "'"


def _out(frag: Fragment) -> str:
    parts = []
    for p in frag:
        if isinstance(p, SpecialToken):
            parts.append("{{- bos_token -}}" if p.name == "BOS" else "{{- eos_token -}}")
        elif isinstance(p, DateToken):
            parts.append("{{- strftime_now(" + jinja_string(p.format) + ") -}}")
        else:
            parts.append("{{- " + jinja_string(p.value) + " -}}")
    return "".join(parts)


def hf_strip(side: str, expr: str) -> str:
    """The HF target's whitespace strip of ``expr``: ``| trim``, ``.lstrip()``, ``.rstrip()``."""
    if side == "both":
        return "(" + expr + " | trim)"
    return "(" + expr + ")." + ("lstrip" if side == "left" else "rstrip") + "()"


def hf_pystr(expr: str) -> str:
    """The HF target's Python ``str()`` of a value: Jinja's ``| string`` (Python's own, in transformers)."""
    return "(" + expr + " | string)"


def content_expr(expr: str, rule: ContentRule, strip=hf_strip) -> str:
    """``expr`` as the content ``rule`` renders it (without its reasoning block): reasoning dropped,
    ``.lstrip('\\n')``, then the whitespace trim written by ``strip(side, expr)`` (the llama.cpp
    target passes its exact macros)."""
    first = rule.trim_first
    if first:
        expr = strip(rule.trim_side, expr)
    drop = rule.drop_think
    if drop in ("last", "first"):
        expr = ("(" + expr + ").split(" + jinja_string(THINK_END)
                + (", 1" if drop == "first" else "") + ")[-1]")
    elif drop:  # the answer after </think> is stripped only when there is one
        answer = "(" + expr + ").split(" + jinja_string(THINK_END) + (", 1)[1]" if drop.startswith("first") else ")[-1]")
        answer = strip("both", answer) if drop == "last_trim" else answer + (
            ".strip('\\n')" if drop == "last_strip_nl" else ".lstrip('\\n')")
        expr = "(" + answer + " if " + jinja_string(THINK_END) + " in " + expr + " else " + expr + ")"
    if rule.lstrip_nl:
        expr = "(" + expr + ").lstrip('\\n')"
    if not rule.trim or first:
        return expr
    return strip(rule.trim_side, expr)


def _content(expr: str, rule: ContentRule, strip=hf_strip) -> str:
    return "{{- " + content_expr(expr, rule, strip) + " -}}"


REASONING_VAR = "tmplc_reasoning"


def reasoning_expr(expr: str) -> str:
    """The Jinja expression of :func:`tmplc.ir.reasoning_of` ``expr``."""
    return ("((" + expr + ").split(" + jinja_string(THINK_END) + ")[0].rstrip('\\n').split("
            + jinja_string(THINK_START) + ")[-1].lstrip('\\n') if " + jinja_string(THINK_END) + " in "
            + expr + " else '')")


#: an answer's explicit reasoning (``reasoning_content``, else ``thinking``), or none
GIVEN_VAR = "tmplc_given"
#: an answer's content (``''`` for a tool-call-only answer whose content is none)
CONTENT_VAR = "tmplc_content"


def _given(how: str = "verbatim", strip=hf_strip) -> str:
    """The explicit reasoning as ``Structure.given_reasoning`` reads it."""
    if how == "trim":
        return "(" + strip("both", GIVEN_VAR) + ")"
    return "(" + GIVEN_VAR + (".strip('\\n')" if how == "strip_nl" else "") + ")"


def _think_block(tb, strip=hf_strip, content: str = "message['content']", given: str | None = None) -> str:
    """A final answer's reasoning block (:class:`tmplc.ir.ThinkBlock`), before its content;
    ``given``: the answer may carry its reasoning (:data:`GIVEN_VAR`), read as
    ``Structure.given_reasoning`` says (None: it may not)."""
    if tb is None:
        return ""
    if tb.hidden:
        return _lit(tb.open)
    out = ("{{- " + jinja_string(tb.open) + " -}}" if tb.open else "") + "{{- " \
        + (strip("both", REASONING_VAR) if tb.trim else REASONING_VAR) + " -}}" + ("{{- " + jinja_string(tb.close) + " -}}" if tb.close else "")
    if not tb.always:
        out = "{%- if " + REASONING_VAR + " -%}" + out + ("{%- else -%}" + _lit(tb.absent) if tb.absent else "") \
            + "{%- endif -%}"
    value = reasoning_expr(content)
    if given:
        value = "(" + _given(given, strip) + " if " + GIVEN_VAR + " is not none else " + value + ")"
    return "{%- set " + REASONING_VAR + " = " + value + " -%}" + out


FINAL_NS = "tmplc_final"


def _final_setup(st) -> str:
    """What the final-answer test needs before the loop: the last assistant message's index
    (``last_answer``) or the last user message's (``after_user``; past the end without one)."""
    if st.final_scope == "last_answer":
        return ("{%- set " + FINAL_NS + " = namespace(i=-1) -%}{%- for m in messages -%}{%- if m['role'] == "
                "'assistant' -%}{%- set " + FINAL_NS + ".i = loop.index0 -%}{%- endif -%}{%- endfor -%}")
    if st.final_scope in ("after_user", "after_user_reasoning"):
        return ("{%- set " + FINAL_NS + " = namespace(i=messages | length) -%}{%- for m in messages -%}{%- if "
                "m['role'] == 'user' -%}{%- set " + FINAL_NS + ".i = loop.index0 -%}{%- endif -%}{%- endfor -%}")
    return ""


def _final_test(st) -> str:
    """Whether the message of the loop (an assistant one) is a final answer (its own rule and
    ending); see ``Structure.final_answers``."""
    reasoned = "(" + GIVEN_VAR + " if " + GIVEN_VAR + " is not none else " + reasoning_expr(CONTENT_VAR) + ")"
    test = {"last": "loop.last", "last_answer": "loop.index0 == " + FINAL_NS + ".i",
            "after_user": "loop.index0 > " + FINAL_NS + ".i",
            "after_user_reasoning": "(loop.index0 > " + FINAL_NS + ".i and (loop.last or " + reasoned + "))",
            }[st.final_scope]
    if st.prompt_after_answer == "history":
        test = "(" + test + " and not (add_generation_prompt and messages[-1]['role'] == 'assistant'))"
    return test


def _empty_test(a, strip, last: str = "loop.last", content: str = "message['content']") -> str:
    """Whether an answer is empty (its ``{EMPTY}`` turn is rendered instead); ``last``: the final
    answer test."""
    if a.empty_raw:
        return content + " == ''"
    test = "(" + content_expr(content, a.rule, strip) + ") == ''"
    if a.final is not None:
        test = ("((" + last + " and (" + content_expr(content, a.final, strip) + ") == '') or "
                "(not " + last + " and " + test + "))")
    return test


def _answer_expr(rule: ContentRule, strip, content: str, given: str | None) -> str:
    """The expression of an answer's content by ``rule`` (without its block); ``given``: an
    explicit reasoning (:data:`GIVEN_VAR`) means the content is not split at ``</think>``."""
    expr = content_expr(content, rule, strip)
    if given and rule.drop_think:
        from dataclasses import replace

        expr = ("(" + content_expr(content, replace(rule, drop_think=""), strip) + " if " + GIVEN_VAR
                + " is not none else " + expr + ")")
    if rule.wraps_nonempty:
        expr = ("(" + jinja_string(rule.before_nonempty) + " ~ (" + expr + ") ~ " + jinja_string(rule.after_nonempty)
                + " if (" + expr + ") else '')")
    return expr


def _answer(rule: ContentRule, strip, content: str = "message['content']", given: str | None = None) -> str:
    """An answer's block (if any) and content by ``rule``."""
    seen = strip(rule.trim_side, content) if rule.trim_first else content
    return _think_block(rule.think, strip, seen, given) + "{{- " + _answer_expr(rule, strip, content, given) + " -}}"


def _lit(text: str) -> str:
    """Output of literal ``text`` (nothing for ``""``)."""
    return "{{- " + jinja_string(text) + " -}}" if text else ""


def _json_filter(style) -> str:
    """transformers' ``tojson`` with the format's :class:`~tmplc.ir.JsonStyle`."""
    if style.tojson_default:
        return "tojson"
    return ("tojson(ensure_ascii=" + ("true" if style.ensure_ascii else "false") + ", indent="
            + ("none" if style.indent is None else str(style.indent)) + ", separators=("
            + jinja_string(style.separators[0]) + ", " + jinja_string(style.separators[1]) + "), sort_keys="
            + ("true" if style.sort_keys else "false") + ")")


#: whether tools are given (set once at the top of a tool format's template)
TOOLS_VAR = "tmplc_tools"


def _tools_test(tf) -> str:
    """Whether ``tools`` counts as tools (``ToolFormat.given``: not empty, or not none)."""
    return "(tools is defined and tools is not none)" if tf.empty_list else "(tools is defined and tools)"


def _tool_list(tf) -> str:
    """The tool list: ``list_prefix``, each tool's JSON in ``item_prefix``/``item_suffix``, ``list_suffix``."""
    sep = ("{%- if not loop.first -%}" + _lit(tf.item_sep) + "{%- endif -%}") if tf.item_sep else ""
    obj, check = "tool", ""
    if tf.tool_object == "function":
        obj = "tool['function']"
        check = ("{%- if " + obj + " is not defined or " + obj + " is not mapping -%}{{- raise_exception('tmplc: tools['"
                 " ~ loop.index0 ~ '] has no \\'function\\' object: this format lists each tool\\'s function object') "
                 "-}}{%- endif -%}")
    if tf.list_json:  # one array: the function objects gathered first where only they are listed
        if tf.tool_object == "function":
            items = ("{%- set tmplc_l = namespace(fns=[]) -%}{%- for tool in tools -%}" + check
                     + "{%- set tmplc_l.fns = tmplc_l.fns + [" + obj + "] -%}{%- endfor -%}"
                     "{{- tmplc_l.fns | " + _json_filter(tf.json) + " -}}")
        else:
            items = "{{- tools | " + _json_filter(tf.json) + " -}}"
        return _lit(tf.list_prefix) + items + _lit(tf.list_suffix)
    if tf.tool_layout == "python_def":
        ps = "tool['function']['parameters']"
        fail = ("{{- raise_exception('tmplc: tools[' ~ loop.index0 ~ ']: this format writes each tool as a Python "
                "signature: it needs a function tool with function.parameters.properties (and parameters.required "
                "a list of names)') -}}")
        # (a loop over required, not reject('string'): llama.cpp's reject ignores a test's name)
        check = ("{%- if tool['type'] is not defined or tool['type'] != 'function' or tool['function'] is not defined "
                 "or tool['function'] is not mapping or tool['function']['parameters'] is not defined or " + ps
                 + " is not mapping or " + ps + "['properties'] is not defined or " + ps + "['properties'] is not "
                 "mapping -%}" + fail + "{%- elif " + ps + "['required'] is defined -%}{%- if " + ps
                 + "['required'] is string or " + ps + "['required'] is mapping or " + ps + "['required'] is not "
                 "sequence -%}" + fail + "{%- endif -%}{%- for tmplc_r in " + ps + "['required'] -%}{%- if tmplc_r "
                 "is not string -%}" + fail + "{%- endif -%}{%- endfor -%}{%- endif -%}")
    item = ("{{- " + XML_MACRO + "(" + obj + ") -}}" if tf.tool_layout == "xml"
            else "{{- " + PYTHON_DEF_MACRO + "(tool['function']) -}}" if tf.tool_layout == "python_def"
            else "{{- " + TYPESCRIPT_MACRO + "(" + obj + ") -}}" if tf.tool_layout == "typescript"
            else "{{- " + PYTHON_STR_MACRO + "(" + obj + ") -}}" if tf.tool_layout == "python_str"
            else "{{- " + obj + " | " + _json_filter(tf.json) + " -}}")
    items = ("{%- for tool in tools -%}" + check + sep + _lit(tf.item_prefix) + item + _lit(tf.item_suffix)
             + "{%- endfor -%}")
    return _lit(tf.list_prefix) + items + _lit(tf.list_suffix)


#: the macro that writes a tool's function object in the ``xml`` layout (:func:`tmplc.ir.xml_tool`)
XML_MACRO = "tmplc_xml_tool"
#: the macro that writes a tool's function object in the ``python_def`` layout (:func:`tmplc.ir.python_def_tool`)
PYTHON_DEF_MACRO = "tmplc_python_def_tool"


def _python_def_macros(strip, pystr) -> str:
    """``tmplc_python_def_tool(fn)``: :func:`tmplc.ir.python_def_tool` in Jinja (``strip``: the
    description's trim; ``pystr``: Python's ``str()`` of a value)."""
    from tmplc.ir import PY_TYPES

    types = "".join(("{%- if" if k == 0 else "{%- elif") + " t == " + jinja_string(name) + " -%}{{- "
                    + jinja_string(py) + " -}}" for k, (name, py) in enumerate(PY_TYPES.items()))
    return ("{%- macro tmplc_py_type(spec) -%}{%- set t = spec['type'] if spec is mapping and spec['type'] is defined "
            "else none -%}" + types + "{%- else -%}{{- 'Any' -}}{%- endif -%}{%- endmacro -%}\n"
            "{%- macro tmplc_py_desc(spec) -%}{%- if spec is mapping and spec['description'] is defined and "
            "spec['description'] -%}{{- " + pystr("spec['description']") + " -}}{%- endif -%}{%- endmacro -%}\n"
            "{%- macro " + PYTHON_DEF_MACRO + "(fn) -%}{%- set ps = fn['parameters'] -%}"
            "{%- set req = ps['required'] if ps['required'] is defined else [] -%}"
            "{{- 'def ' ~ (fn['name'] if fn['name'] is defined else '') ~ '(' -}}"
            "{%- for k, v in ps['properties'] | items -%}{%- if not loop.first -%}{{- ',' -}}{%- endif -%}"
            "{{- k ~ ': ' ~ tmplc_py_type(v) -}}{%- endfor -%}"
            "{{- " + jinja_string('):\n    """\n    ') + " -}}{%- if fn['description'] is defined -%}{{- "
            + strip("both", "(fn['description'] | string)") + " -}}{%- endif -%}{{- '\\n\\n' -}}"
            "{%- if ps['properties'] -%}{{- '    Args:' -}}{%- for k, v in ps['properties'] | items -%}"
            "{{- '\\n    - ' ~ k ~ ' (' ~ tmplc_py_type(v) ~ ') ' ~ (" + jinja_string("[必填]") + " if k in req else "
            + jinja_string("[选填]") + ") ~ ': ' ~ tmplc_py_desc(v) -}}{%- endfor -%}{%- endif -%}{{- '\\n' -}}"
            "{%- set rs = fn['returns'] if fn['returns'] is defined else none -%}"
            "{%- if rs is mapping and rs['properties'] is defined and rs['properties'] is mapping and rs['properties'] -%}"
            "{{- '    Returns:' -}}{%- for k, v in rs['properties'] | items -%}"
            "{{- '\\n    - ' ~ k ~ ' (' ~ tmplc_py_type(v) ~ '): ' ~ tmplc_py_desc(v) -}}{%- endfor -%}{%- endif -%}"
            "{{- " + jinja_string('\n    """') + " -}}{%- endmacro -%}")


#: the macro that writes a tool as Python's ``str`` does (the ``python_str`` layout)
PYTHON_STR_MACRO = "tmplc_python_str_tool"

#: the macro that writes a tool's function object in the ``typescript`` layout (:func:`tmplc.ir.typescript_tool`)
TYPESCRIPT_MACRO = "tmplc_typescript_tool"


def _typescript_macros(strip, pystr) -> str:
    """``tmplc_typescript_tool(fn)``: :func:`tmplc.ir.typescript_tool` in Jinja (``strip``: the test
    for a blank description line; ``pystr``: Python's ``str()`` of a value)."""
    from tmplc.ir import TS_COMMENT_KEYS

    def lines(expr: str, indent: str) -> str:  # the non-blank lines of a description, as comments
        return ("{%- for tmplc_line in (" + expr + ").split('\\n') -%}{%- if " + strip("both", "tmplc_line")
                + " -%}{{- " + indent + " ~ '// ' ~ tmplc_line ~ '\\n' -}}{%- endif -%}{%- endfor -%}")

    def enum(quote: bool) -> str:
        item = "'\"' ~ " + pystr("tmplc_e") + " ~ '\"'" if quote else pystr("tmplc_e")
        return ("{%- for tmplc_e in schema['enum'] -%}{%- if not loop.first -%}{{- ' | ' -}}{%- endif -%}{{- " + item
                + " -}}{%- endfor -%}")

    has_enum = "schema['enum'] is defined and schema['enum']"
    keys = "[" + ", ".join(jinja_string(k) for k in TS_COMMENT_KEYS) + "]"
    return (
        "{%- macro tmplc_ts_value(v) -%}{%- if v is string -%}{{- '\"' ~ v ~ '\"' -}}{%- else -%}{{- " + pystr("v")
        + " -}}{%- endif -%}{%- endmacro -%}\n"
        "{%- macro tmplc_ts_type(schema, indent) -%}"
        "{%- set ty = schema['type'] if schema['type'] is defined else none -%}"
        "{%- if ty == 'object' -%}{{- '{\\n' -}}"
        "{%- set required = schema['required'] if schema['required'] is defined else [] -%}"
        "{%- for key, val in (schema['properties'] if schema['properties'] is defined else {}) | items -%}"
        "{%- if 'description' in val -%}" + lines("val['description']", "indent") + "{%- endif -%}"
        "{%- for k, v in val | items -%}{%- if k in " + keys + " -%}"
        "{{- indent ~ '// ' ~ k ~ ': ' ~ tmplc_ts_value(v) ~ '\\n' -}}{%- endif -%}{%- endfor -%}"
        "{{- indent ~ key ~ ('' if key in required else '?') ~ ': ' ~ tmplc_ts_type(val, indent ~ '  ') ~ ',' -}}"
        "{%- if 'default' in val -%}{{- ' // default: ' ~ tmplc_ts_value(val['default']) -}}"
        "{%- elif 'defalut_value' in val -%}{{- ' // default: ' ~ tmplc_ts_value(val['defalut_value']) -}}{%- endif -%}"
        "{{- '\\n' -}}{%- endfor -%}"
        "{%- if schema['additionalProperties'] is defined -%}{%- set ap = schema['additionalProperties'] -%}"
        "{%- if ap is mapping -%}{{- indent ~ '[key: string]: ' ~ tmplc_ts_type(ap, indent ~ '  ') ~ '\\n' -}}"
        "{%- elif ap == true -%}{{- indent ~ '[key: string]: any\\n' -}}{%- endif -%}{%- endif -%}"
        "{{- indent[:(indent | length) - 2] ~ '}' -}}"
        "{%- elif ty == 'string' -%}{%- if " + has_enum + " -%}" + enum(True)
        + "{%- elif schema['format'] is defined and schema['format'] in ['date-time', 'date'] -%}{{- 'Date' -}}"
        "{%- else -%}{{- 'string' -}}{%- endif -%}"
        "{%- elif ty == 'number' or ty == 'integer' -%}{%- if " + has_enum + " -%}" + enum(False)
        + "{%- else -%}{{- 'number' -}}{%- endif -%}"
        "{%- elif ty == 'boolean' -%}{{- 'boolean' -}}"
        # (the "items" key through a loop: llama.cpp's engine reads schema['items'] as the mapping's method)
        "{%- elif ty == 'array' -%}{%- if 'items' in schema -%}{%- for k, v in schema | items if k == 'items' -%}"
        "{{- tmplc_ts_type(v, indent) ~ '[]' -}}{%- endfor -%}{%- else -%}{{- 'Array<any>' -}}{%- endif -%}"
        "{%- else -%}{{- 'any' -}}{%- endif -%}{%- endmacro -%}\n"
        "{%- macro " + TYPESCRIPT_MACRO + "(fn) -%}"
        "{%- if fn['description'] is defined and fn['description'] -%}"
        + lines("fn['description']", "''") + "{%- endif -%}"
        "{%- set ps = fn['parameters'] if fn['parameters'] is defined else none -%}"
        "{%- set rs = fn['return_parameters'] if fn['return_parameters'] is defined else none -%}"
        "{{- 'type ' ~ (fn['name'] if fn['name'] is defined else '') ~ ' = ' -}}"
        "{%- if ps and ps['properties'] is defined and ps['properties'] -%}{{- '(_: ' ~ tmplc_ts_type(ps, '  ') ~ ') => ' -}}"
        "{%- else -%}{{- '() => ' -}}{%- endif -%}"
        "{%- if rs and rs['properties'] is defined and rs['properties'] -%}{{- tmplc_ts_type(rs, '  ') -}}"
        "{%- else -%}{{- 'any' -}}{%- endif -%}{{- ';\\n' -}}{%- endmacro -%}")


def _xml_macros(tf, strip, pystr) -> str:
    """``tmplc_xml_tool(fn)``: :func:`tmplc.ir.xml_tool` in Jinja (``strip``: the descriptions' trim;
    ``pystr``: Python's ``str()`` of a value)."""
    def extra(d: str, handled: tuple[str, ...]) -> str:
        return ("{{- tmplc_xml_extra(" + d + ", [" + ", ".join(jinja_string(h) for h in handled) + "]) -}}")

    value = ("{%- if v is mapping or (v is sequence and v is not string) -%}{{- v | " + _json_filter(tf.json)
             + " -}}{%- else -%}{{- v | string -}}{%- endif -%}")
    return ("{%- macro tmplc_xml_extra(d, handled) -%}{%- if d is mapping -%}{%- for k, v in d | items -%}"
            "{%- if k not in handled -%}{{- '\\n<' ~ k ~ '>' -}}" + value + "{{- '</' ~ k ~ '>' -}}{%- endif -%}"
            "{%- endfor -%}{%- endif -%}{%- endmacro -%}\n"
            "{%- macro " + XML_MACRO + "(fn) -%}{{- '\\n<function>\\n<name>' ~ (fn['name'] if fn['name'] is defined "
            "else '') ~ '</name>' -}}"
            "{%- if fn['description'] is defined -%}{{- '\\n<description>' ~ "
            + strip("both", "(fn['description'] | string)") + " ~ '</description>' -}}{%- endif -%}"
            "{{- '\\n<parameters>' -}}"
            "{%- set ps = fn['parameters'] if fn['parameters'] is defined else none -%}"
            "{%- if ps is mapping and ps['properties'] is defined and ps['properties'] is mapping -%}"
            "{%- for name, spec in ps['properties'] | items -%}{{- '\\n<parameter>\\n<name>' ~ name ~ '</name>' -}}"
            "{%- if spec is mapping -%}"
            "{%- if spec['type'] is defined -%}{{- '\\n<type>' ~ " + pystr("spec['type']") + " ~ '</type>' -}}{%- endif -%}"
            "{%- if spec['description'] is defined -%}{{- '\\n<description>' ~ "
            + strip("both", "(spec['description'] | string)") + " ~ '</description>' -}}{%- endif -%}"
            "{%- endif -%}" + extra("spec", ("name", "type", "description")) + "{{- '\\n</parameter>' -}}"
            "{%- endfor -%}{%- endif -%}" + extra("ps", ("type", "properties")) + "{{- '\\n</parameters>' -}}"
            + extra("fn", ("type", "name", "description", "parameters")) + "{{- '\\n</function>' -}}"
            "{%- endmacro -%}")


def _system_prefix(st) -> str:
    """The system block's prefix (a tool format's ``system_prefix`` when tools are given)."""
    tf = st.tools
    if tf is None or tf.system_prefix is None:
        return _out(st.system.prefix)
    return "{%- if " + TOOLS_VAR + " -%}" + _out(tf.system_prefix) + "{%- else -%}" + _out(st.system.prefix) + "{%- endif -%}"


def _tool_block(st, sys_on: str, strip) -> str:
    """The system block with the tool list (rendered whenever ``tools`` is given)."""
    sb, tf = st.system, st.tools
    sep = "{{- " + jinja_string(tf.system_sep) + " -}}" if tf.system_sep else ""
    if sep and tf.system_sep_if == "content":
        sep = "{%- if (" + content_expr("messages[0]['content']", sb.rule, strip) + ") != '' -%}" + sep + "{%- endif -%}"
    if tf.empty_system_counts:  # with tools, an empty system message still counts
        sys_on = "has_system"
    content = _content("messages[0]['content']", sb.rule, strip)
    head = "{%- if " + sys_on + " -%}" + (sep + content if tf.list_first else content + sep)
    default = tf.default_system if tf.default_system is not None else sb.default if tf.keep_default_system else None
    if default is not None:
        shown = sb.content(default)
        sep_text = tf.system_sep if shown or tf.system_sep_if == "message" else ""
        head += (("{%- elif not has_system -%}" if sb.empty_omitted else "{%- else -%}") + "{{- "
                 + jinja_string(sep_text + shown if tf.list_first else shown + sep_text) + " -}}")
    head += "{%- endif -%}"
    if tf.list_first:
        return _system_prefix(st) + _tool_list(tf) + head + _out(sb.suffix)
    return _system_prefix(st) + head + _tool_list(tf) + _out(sb.suffix)


def _first_user_checks(fmt) -> str:
    """A ``first_user`` tool list's refusals (as the reference's): with tools, the first message
    after the system message must exist and be a user message."""
    where = "(1 if has_system else 0)"
    name = jinja_string(fmt.name)[1:-1]
    return ("{%- if " + TOOLS_VAR + " -%}{%- if messages | length <= " + where + " -%}{{- raise_exception('tmplc: "
            "format \\'" + name + "\\' puts the tools in the first user message, but the conversation has no "
            "user message') -}}{%- elif messages[" + where + "]['role'] != 'user' -%}{{- raise_exception('tmplc: "
            "message ' ~ " + where + " ~ ': format \\'" + name + "\\' puts the tools in the first user message: "
            "with tools, the first message after the system message must be a user message') -}}{%- endif -%}"
            "{%- endif -%}")


#: the index of the last user message (a ``last_user`` tool list goes before it)
LAST_USER_VAR = "tmplc_last_user"


def _last_user_setup(fmt) -> str:
    """A ``last_user`` tool list: where it goes, and the reference's refusal (tools without a user message)."""
    name = jinja_string(fmt.name)[1:-1]
    return ("{%- set tmplc_ns = namespace(last_user=-1) -%}{%- for m in messages -%}{%- if m['role'] == 'user' -%}"
            "{%- set tmplc_ns.last_user = loop.index0 -%}{%- endif -%}{%- endfor -%}"
            "{%- set " + LAST_USER_VAR + " = tmplc_ns.last_user -%}"
            "{%- if " + TOOLS_VAR + " and " + LAST_USER_VAR + " < 0 -%}{{- raise_exception('tmplc: format \\'" + name
            + "\\' puts the tools before the last user message, but the conversation has no user message') -}}"
            "{%- endif -%}"
            "{%- if " + TOOLS_VAR + " -%}{%- for m in messages -%}{%- if m['role'] == 'user' and loop.index0 < "
            + LAST_USER_VAR + " and m['content'] == messages[" + LAST_USER_VAR + "]['content'] -%}{{- raise_exception("
            "'tmplc: message ' ~ loop.index0 ~ ': format \\'" + name + "\\' puts the tools before the last user "
            "message, and this earlier user message has the same content: make their contents differ') -}}"
            "{%- endif -%}{%- endfor -%}{%- endif -%}")


def _id_check(expr: str, what: str) -> str:
    return ("{%- if not (" + expr + " is defined and " + expr + " is string) -%}{{- raise_exception('tmplc: message ' "
            "~ loop.index0 ~ ': " + what + "') -}}{%- endif -%}")


#: the message in the loop has tool calls
HAS_CALLS = "message['tool_calls'] is defined and message['tool_calls']"
#: the answer in the loop comes right after a tool result (set where ``answers_after_results`` is not "rule")
AFTER_RESULT = "tmplc_after_result"


def _call_answer_expr(tf, rule: ContentRule, strip, given: str | None) -> str:
    """An answer with tool calls as it renders (``ToolFormat.answer_rule``), as an expression."""
    expr = _answer_expr(tf.answer_rule(rule, calls=True, after_results=False), strip, CONTENT_VAR, given)
    after = tf.answer_rule(rule, calls=True, after_results=True)
    if after == tf.answer_rule(rule, calls=True, after_results=False):
        return expr
    return ("((" + _answer_expr(after, strip, CONTENT_VAR, given) + ") if (" + AFTER_RESULT + ") else ("
            + expr + "))")


def _calls(st, strip, given: str | None, pystr=hf_pystr) -> str:
    """An answer's tool calls (after its content, inside its generation span)."""
    tf = st.tools
    if not tf.renders_calls:
        return ""  # refused before anything of the answer renders (_call_checks)
    answer = _call_answer_expr(tf, st.assistant.rule, strip, given)
    sep = "{%- if not loop.first -%}" + _lit(tf.call_sep)
    if tf.content_sep:
        cond = {"answer": answer, "content": CONTENT_VAR,
                "unended": "(" + answer + ") and not (" + answer + ").endswith(" + jinja_string(tf.content_sep) + ")"}
        sep += "{%- elif " + cond[tf.content_sep_if] + " -%}" + _lit(tf.content_sep)
    sep += "{%- endif -%}"
    if tf.per_argument:
        other = "" if tf.arg_middle_other is None else _lit(tf.arg_middle_other)
        string = "{{- tmplc_v -}}"
        if tf.arg_cdata:
            string = ("{%- if " + " or ".join(jinja_string(c) + " in tmplc_v" for c in CDATA_TRIGGERS) + " -%}{{- "
                      + jinja_string(CDATA_OPEN) + " ~ tmplc_v ~ " + jinja_string(CDATA_CLOSE) + " -}}{%- else -%}"
                      + string + "{%- endif -%}")
        if tf.arg_values == "python_call":
            string = _lit("'") + string + _lit("'")
        value = "{%- if tmplc_v is string -%}" + ("" if tf.arg_middle_other is None else _lit(tf.arg_middle)) + string
        if tf.arg_values == "python_call":
            value += "{%- elif tmplc_v is mapping -%}" + other + "{{- tmplc_v | " + _json_filter(tf.call_style) + " -}}"
        if tf.arg_values == "python":
            value += ("{%- elif tmplc_v is none -%}" + other + "{{- 'None' -}}{%- elif tmplc_v is true -%}" + other
                      + "{{- 'True' -}}{%- elif tmplc_v is false -%}" + other + "{{- 'False' -}}")
        as_str = tf.arg_values in ("str", "python_call")
        value += "{%- else -%}" + other + ("{{- " + pystr("tmplc_v") + " -}}" if as_str else
                                           "{{- tmplc_v | " + _json_filter(tf.call_style) + " -}}") + "{%- endif -%}"
        middle = _lit(tf.arg_middle) if tf.arg_middle_other is None else ""
        between = "{%- if not loop.first -%}" + _lit(tf.arg_sep) + "{%- endif -%}" if tf.arg_sep else ""
        args = ("{%- for tmplc_k, tmplc_v in tmplc_f['arguments'] | items -%}" + between + _lit(tf.arg_prefix)
                + "{{- tmplc_k -}}" + middle + value + _lit(tf.arg_suffix) + "{%- endfor -%}")
        if tf.no_arguments:
            args += "{%- if not tmplc_f['arguments'] -%}" + _lit(tf.no_arguments) + "{%- endif -%}"
    else:
        args = "{{- tmplc_f['arguments'] | " + _json_filter(tf.call_style) + " -}}"
        if tf.string_arguments == "verbatim":
            args = ("{%- if tmplc_f['arguments'] is string -%}{{- tmplc_f['arguments'] -}}{%- else -%}" + args
                    + "{%- endif -%}")
    cid = after = last = ""
    if tf.call_id_prefix is not None:
        cid = (_id_check("tc['id']", "this format renders each tool call\\'s id: give every call an id string")
               + _lit(tf.call_id_prefix) + "{{- tc['id'] -}}" + _lit(tf.call_id_suffix))
        if not tf.last_call_ids:  # the last message's calls render without ids
            last = "{%- set tmplc_ids = not loop.last -%}"
            cid = "{%- if tmplc_ids -%}" + cid + "{%- endif -%}"
        if tf.call_id_after:
            cid, after = "", cid
    if tf.call_index_prefix is not None:
        cid += _lit(tf.call_index_prefix) + "{{- loop.index0 -}}"
    return ("{%- if message['tool_calls'] -%}" + last + "{%- for tc in message['tool_calls'] -%}"
            "{%- set tmplc_f = tc['function'] if tc['function'] is defined else tc -%}" + sep
            + ("{%- if loop.first -%}" + _lit(tf.calls_open) + "{%- endif -%}" if tf.calls_open else "")
            + _lit(tf.call_prefix) + "{{- tmplc_f['name'] -}}" + cid + _lit(tf.call_middle) + args + after
            + _lit(tf.call_suffix)
            + ("{%- if loop.last -%}" + _lit(tf.calls_close) + "{%- endif -%}" if tf.calls_close else "")
            + "{%- endfor -%}{%- endif -%}")


def _call_checks(st, strip, given: str | None) -> str:
    """The refusals of an answer with tool calls (``max_calls``, ``calls_alone``), as the reference's."""
    tf = st.tools
    if not tf.renders_calls:
        return ("{{- raise_exception('tmplc: message ' ~ loop.index0 ~ ': this format renders no tool_calls (its "
                "template never reads them: the model writes its calls into the content): give the calls in the "
                "content as the model emits them') -}}")
    checks = ""
    if tf.per_argument:
        checks += ("{%- set tmplc_mi = loop.index0 -%}{%- for tc in message['tool_calls'] -%}{%- if (tc['function'] "
                   "if tc['function'] is defined else tc)['arguments'] is string -%}{{- raise_exception('tmplc: "
                   "message ' ~ tmplc_mi ~ ': this "
                   "format renders a call\\'s arguments key by key and needs them as an object, not a JSON "
                   "string') -}}{%- endif -%}{%- endfor -%}")
    if tf.max_calls:
        checks += ("{%- if message['tool_calls'] | length > " + str(tf.max_calls) + " -%}{{- raise_exception("
                   "'tmplc: message ' ~ loop.index0 ~ ': this format renders at most " + str(tf.max_calls)
                   + " tool call(s) per answer') -}}{%- endif -%}")
    if tf.calls_alone:
        a = st.assistant
        filled = "(" + _call_answer_expr(tf, a.rule, strip, given) + ") != ''"
        if a.final is not None:
            last = _final_test(st)
            filled = ("((" + last + " and (" + _call_answer_expr(tf, a.final, strip, given)
                      + ") != '') or (not "
                      + last + " and " + filled + "))")
        checks += ("{%- if " + filled + " -%}{{- raise_exception('tmplc: message ' ~ loop.index0 ~ ': this "
                   "format renders an answer with tool calls without its content') -}}{%- endif -%}")
    return checks


def _calls_checks(st, strip, given: str | None) -> str:
    """An answer's refusals for its tool calls (before anything of it renders)."""
    c = _call_checks(st, strip, given)
    return "{%- if " + HAS_CALLS + " -%}" + c + "{%- endif -%}" if c else ""


def _results(tf, strip=hf_strip) -> str:
    """A ``role: "tool"`` message (a run of them opened and closed once when ``grouped``)."""
    first = "loop.first or messages[loop.index0 - 1]['role'] != 'tool'"
    end = "loop.last or messages[loop.index0 + 1]['role'] != 'tool'"
    opener = _lit(tf.results_open)
    closer = _lit(tf.results_close)
    if tf.grouped:
        sep = "{%- else -%}" + _lit(tf.result_sep) if tf.result_sep else ""
        opener = (opener or sep) and "{%- if " + first + " -%}" + opener + sep + "{%- endif -%}"
        closer = closer and "{%- if " + end + " -%}" + closer + "{%- endif -%}"
    content = "message['content']"
    if tf.result_content == "trim":  # strip() only where it is written: the llama.cpp target records its use
        content = strip("both", content)
    elif tf.result_content == "json":
        content += " | " + _json_filter(tf.call_style)
    rid = ""
    if tf.result_id_suffix is not None:
        rid = (_id_check("message['tool_call_id']", "this format renders the id of the call a tool result answers: "
                         "give the tool message a tool_call_id string")
               + "{{- message['tool_call_id'] -}}" + _lit(tf.result_id_suffix))
    return ("{%- elif message['role'] == 'tool' -%}" + opener + _lit(tf.result_prefix) + rid + "{{- " + content + " -}}"
            + _lit(tf.result_suffix) + closer)


def _after_results(prefix: Fragment, tf, role: str, index: str) -> str:
    """A turn's prefix (the turn at ``index``): ``tf``'s other prefix where the message before is a tool result."""
    other = None if tf is None else getattr(tf, role + "_prefix_after_results")
    if other is None:
        return _out(prefix)
    before = "messages[" + index + " - 1]['role']"
    test = before + " == 'tool'"
    if role == "user" and tf.user_after_user:
        test = "(" + test + " or " + before + " == 'user')"
    return ("{%- if " + index + " > 0 and " + test + " -%}" + _lit(other)
            + "{%- else -%}" + _out(prefix) + "{%- endif -%}")


def _refusals(fmt: "ChatFormat", given: str | None) -> str:
    """What a format without tool support cannot render, refused as the reference refuses it
    (``render._check``) instead of silently dropped: ``tools``."""
    tf = fmt.structure.tools
    if tf is not None and not tf.renders_list:
        return ("{%- if tools is defined and tools -%}{{- raise_exception('tmplc: format "
                + jinja_string(fmt.name)[1:-1] + " renders no tool list (its template never reads tools): write the "
                "tool definitions into the system message as the model expects them') -}}{%- endif -%}")
    if tf is not None:
        return ""
    # an empty list means no tools (``{% if tools %}``), and llama.cpp probes every template with ``tools=[]``
    return ("{%- if tools is defined and tools -%}{{- raise_exception('tmplc: format "
            + jinja_string(fmt.name)[1:-1] + " has no tool support: it cannot render tools "
            "(use a tool format, e.g. qwen3-tools)') -}}{%- endif -%}")


def _message_refusals(fmt: "ChatFormat", given: str | None) -> str:
    """Per message: ``tool_calls`` (a format without tool support) and reasoning (a format whose
    answers render none), refused as the reference refuses them."""
    name = jinja_string(fmt.name)[1:-1]
    out = ""
    tf = fmt.structure.tools
    if fmt.structure.refuses_empty_answers:  # as render._check refuses it
        out += ("{%- if message['role'] == 'assistant' and (message['content'] is not defined or message['content'] is "
                "none or message['content'] == '') and not (message['tool_calls'] is defined and "
                "message['tool_calls']) -%}{{- raise_exception('tmplc: message ' ~ loop.index0 ~ ': format " + name
                + " refuses an empty answer (its template raises on one): give the answer its text') -}}{%- endif -%}")
    if tf is not None and tf.results_answer_calls:  # as render._check_run refuses it
        out += ("{%- if message['role'] == 'tool' and (loop.first or messages[loop.index0 - 1]['role'] != 'tool') -%}"
                "{%- set tmplc_run = namespace(n=0, open=true) -%}"
                "{%- for m in messages[loop.index0:] -%}{%- if tmplc_run.open and m['role'] == 'tool' -%}"
                "{%- set tmplc_run.n = tmplc_run.n + 1 -%}{%- else -%}{%- set tmplc_run.open = false -%}{%- endif -%}"
                "{%- endfor -%}"
                "{%- set tmplc_prev = messages[loop.index0 - 1] if not loop.first else {} -%}"
                "{%- set tmplc_k = tmplc_prev['tool_calls'] | length if (tmplc_prev['role'] is defined and "
                "tmplc_prev['role'] == 'assistant' and tmplc_prev['tool_calls'] is defined and tmplc_prev['tool_calls']) "
                "else 0 -%}"
                "{%- if tmplc_run.n != tmplc_k -%}{{- raise_exception('tmplc: message ' ~ loop.index0 ~ ': format "
                + name + " renders a run of tool results as the answers to the calls of the answer right before it, "
                "one result per call: give one result per call, right after the answer with the calls') -}}"
                "{%- endif -%}{%- endif -%}")
    if tf is None:
        out += ("{%- if message['tool_calls'] is defined and message['tool_calls'] is not none -%}"
                "{{- raise_exception('tmplc: message ' ~ loop.index0 ~ ': format " + name
                + " has no tool support: it cannot render tool_calls (use a tool format, e.g. "
                "qwen3-tools)') -}}{%- endif -%}")
    if not given:
        out += ("{%- if (message['reasoning_content'] is defined and message['reasoning_content'] is not none) "
                "or (message['thinking'] is defined and message['thinking'] is not none) -%}"
                "{{- raise_exception('tmplc: message ' ~ loop.index0 ~ ': format " + name
                + (" does not read reasoning_content/thinking (its template splits the reasoning off the "
                   "content): put the reasoning in the content as <think>...</think>, or drop it')"
                   if fmt.structure.given_reasoning == "refused" else
                   " renders no reasoning: drop the message\\'s reasoning_content/thinking, or use a "
                   "reasoning format (e.g. qwen3-tools)')") + " -}}{%- endif -%}")
    return out


def to_jinja(fmt: "ChatFormat", *, generation_tags: bool = True, strip=hf_strip, pystr=hf_pystr) -> str:
    """Generate the chat template.  ``generation_tags`` wraps the assistant lead, content and
    suffix in ``{% generation %}`` for ``return_assistant_tokens_mask`` (HF; llama.cpp ignores it).
    ``strip(side, expr)`` writes a whitespace strip (default: Jinja's ``| trim``, ``.lstrip()``,
    ``.rstrip()``), ``pystr(expr)`` Python's ``str()`` of a value (default: ``| string``)."""
    st = fmt.structure
    name = fmt.name.replace("#}", "# }")
    L: list[str] = [f"{{#- tmplc chat template: {name} -#}}"]
    if st.tools is not None and st.tools.renders_list and st.tools.tool_layout == "xml":
        L.append(_xml_macros(st.tools, strip, pystr))
    if st.tools is not None and st.tools.renders_list and st.tools.tool_layout == "python_def":
        L.append(_python_def_macros(strip, pystr))
    if st.tools is not None and st.tools.renders_list and st.tools.tool_layout == "typescript":
        L.append(_typescript_macros(strip, pystr))
    if st.tools is not None and st.tools.renders_list and st.tools.tool_layout == "python_str":
        L.append("{%- macro " + PYTHON_STR_MACRO + "(t) -%}{{- " + pystr("t") + " -}}{%- endmacro -%}")
    L.append("{%- set has_system = messages | length > 0 and messages[0]['role'] == 'system' -%}")
    sb = st.system
    tf = st.tools
    if tf is not None:
        L.append("{%- set " + TOOLS_VAR + " = " + _tools_test(tf) + " -%}")
        if tf.placement == "first_user":
            L.append(_first_user_checks(fmt))
        elif tf.placement == "last_user":
            L.append(_last_user_setup(fmt))
    sys_on = "has_system"
    if sb is not None and sb.skip_empty:  # an empty system message counts as none
        tested = content_expr("messages[0]['content']", sb.rule, strip) if sb.empty_after_trim else \
            "messages[0]['content']"
        L.append("{%- set system_shown = has_system and (" + tested + ") != '' -%}")
        sys_on = "system_shown"
    if tf is not None and tf.renders_list and tf.placement == "start":
        L.append("{%- if " + TOOLS_VAR + " -%}" + _tool_list(tf) + "{%- endif -%}")
    L.append(_out(st.preamble))
    if sb is None:
        L.append("{%- if has_system -%}{{- raise_exception('tmplc: message 0: format "
                 + jinja_string(fmt.name)[1:-1] + " has no system message slot') -}}{%- endif -%}")
        block = ""
    else:
        block = ("{%- if " + sys_on + " -%}" + _system_prefix(st) + _content("messages[0]['content']", sb.rule, strip)
                 + _out(sb.suffix))
        # without a (counting) system message; empty_omitted: only without one at all
        other = "{%- elif not has_system -%}" if sb.empty_omitted else "{%- else -%}"
        if sb.default is not None:
            block += (other + _system_prefix(st)
                      + ("{{- " + jinja_string(sb.content(sb.default)) + " -}}")
                      + _out(sb.suffix))
        elif tf is not None and tf.absent is not None:
            block += ("{%- elif " + ("not has_system and " if sb.empty_omitted else "") + TOOLS_VAR + " -%}"
                      + _out(tf.absent) + (other + _out(sb.absent) if sb.absent is not None else ""))
        elif sb.absent is not None:
            block += other + _out(sb.absent)
        block += "{%- endif -%}"
        if sb.placement == "standalone":
            if tf is not None and tf.renders_list and tf.placement == "system":
                with_tools = _tool_block(st, sys_on, strip)
                if tf.list_block_suffix is not None:  # no system message: the list in a block of its own
                    with_tools = ("{%- if " + ("has_system" if tf.empty_system_counts else sys_on) + " -%}" + with_tools
                                  + "{%- else -%}" + _out(sb.prefix) + _tool_list(tf) + _out(tf.list_block_suffix)
                                  + block + "{%- endif -%}")
                block = "{%- if " + TOOLS_VAR + " -%}" + with_tools + "{%- else -%}" + block + "{%- endif -%}"
            L.append(block)
    if tf is not None and tf.renders_list and tf.placement == "after_system":
        L.append("{%- if " + TOOLS_VAR + " -%}" + _tool_list(tf) + "{%- endif -%}")
    inline = sb is not None and sb.placement == "first_user"
    given = st.given_reasoning if st.reads_reasoning else None
    first_turn = "((has_system and loop.index0 == 1) or (not has_system and loop.first))"
    L.append(_final_setup(st))
    L.append(_refusals(fmt, given))
    L.append("{%- for message in messages -%}")
    L.append(_message_refusals(fmt, given))
    L.append("{%- if message['role'] == 'system' -%}"
             "{%- if not loop.first -%}{{- raise_exception('tmplc: message ' ~ loop.index0 ~ "
             "': a system message is only allowed as the first message') -}}{%- endif -%}")
    L.append("{%- elif message['role'] == 'user' -%}")
    if tf is not None and tf.placement == "last_user":
        L.append("{%- if " + TOOLS_VAR + " and loop.index0 == " + LAST_USER_VAR + " -%}" + _tool_list(tf) + "{%- endif -%}")
    L.append(_after_results(st.user.prefix, tf, "user", "loop.index0"))
    if inline:
        L.append("{%- if " + first_turn + " -%}" + block + "{%- endif -%}")
    if tf is not None and tf.placement == "first_user":
        L.append("{%- if " + TOOLS_VAR + " and " + first_turn + " -%}" + _tool_list(tf) + "{%- endif -%}")
    L.append(_content("message['content']", st.user.rule, strip) + _out(st.user.suffix))
    L.append("{%- elif message['role'] == 'assistant' -%}")
    if inline:
        cond = sys_on if sb.default is None else "true"
        L.append("{%- if " + first_turn + " and " + cond + " -%}{{- raise_exception('tmplc: message ' ~ "
                 "loop.index0 ~ ': this format places the system message inside the first user turn, "
                 "but the first turn after it is an assistant message') -}}{%- endif -%}")
    a = st.assistant
    tools_on = st.tools is not None
    cvar = "message['content']"
    if tools_on or given or st.final_scope == "after_user_reasoning":  # an answer's content ('' when a tool-call-only answer has none) and reasoning
        cvar = CONTENT_VAR
        L.append("{%- set " + CONTENT_VAR + " = message['content'] if message['content'] is string else '' -%}")
        if given:
            L.append("{%- set " + GIVEN_VAR + " = message['reasoning_content'] if (message['reasoning_content'] is "
                     "defined and message['reasoning_content'] is not none) else (message['thinking'] if "
                     "(message['thinking'] is defined and message['thinking'] is not none) else none) -%}")
        else:
            L.append("{%- set " + GIVEN_VAR + " = none -%}")
    if tools_on and tf.answers_after_results != "rule":
        L.append("{%- set " + AFTER_RESULT + " = loop.index0 > 0 and messages[loop.index0 - 1]['role'] == 'tool' -%}")
    last = _final_test(st)
    ending = _out(a.suffix)
    if a.final_suffix is not None:
        own = last
        if tools_on and st.tools.calls_end_turn:
            own = "(" + last + " and not (" + HAS_CALLS + "))"
        ending = "{%- if " + own + " -%}" + _out(a.final_suffix) + "{%- else -%}" + ending + "{%- endif -%}"
    def answer(rule) -> str:
        if a.final is None:
            return _answer(rule(a.rule), strip, cvar, given)
        return ("{%- if " + last + " -%}" + _answer(rule(a.final), strip, cvar, given) + "{%- else -%}"
                + _answer(rule(a.rule), strip, cvar, given) + "{%- endif -%}")

    content = answer(lambda r: r)
    if tools_on and tf.call_answers != "rule":
        content = ("{%- if " + HAS_CALLS + " -%}" + answer(lambda r: tf.answer_rule(r, calls=True, after_results=False))
                   + "{%- else -%}" + content + "{%- endif -%}")
    if tools_on and tf.answers_after_results != "rule":
        content = ("{%- if " + AFTER_RESULT + " -%}" + answer(lambda r: tf.answer_rule(r, calls=False, after_results=True))
                   + "{%- else -%}" + content + "{%- endif -%}")
    body = _out(a.lead) + content + (_calls(st, strip, given, pystr) if tools_on else "") + ending
    if generation_tags:
        body = "{%- generation -%}" + body + "{%- endgeneration -%}"
    body = _after_results(a.prefix, tf, "assistant", "loop.index0") + body
    if a.empty is not None:
        empty = _out(a.empty)
        if tools_on:  # an empty answer with calls: the empty turn's text, then the calls and the turn's end
            calls = _calls(st, strip, given, pystr) + ending
            if generation_tags:
                calls = "{%- generation -%}" + calls + "{%- endgeneration -%}"
            empty += "{%- if " + HAS_CALLS + " -%}" + calls + "{%- endif -%}"
        body = "{%- if " + _empty_test(a, strip, last, cvar) + " -%}" + empty + "{%- else -%}" + body + "{%- endif -%}"
    if tools_on:
        L.append(_calls_checks(st, strip, given))
    L.append(body)
    if tools_on:
        L.append(_results(st.tools, strip))
    L.append("{%- else -%}{{- raise_exception('tmplc: message ' ~ loop.index0 ~ ': unknown role \\'' ~ "
             "message['role'] ~ '\\': this format supports system, user and assistant"
             + (" and tool" if tools_on else "") + "') -}}")
    L.append("{%- endif -%}")
    L.append("{%- endfor -%}")
    if inline:
        L.append("{%- if " + sys_on + " and messages | length == 1 -%}{{- raise_exception('tmplc: message 0: "
                 "this format places the system message inside the first user turn, but the "
                 "conversation has no user message') -}}{%- endif -%}")
    gen = _after_results(st.assistant.prefix, tf, "assistant", "messages | length")
    if st.assistant.prompt_only:
        gen += "{{- " + jinja_string(st.assistant.prompt_only) + " -}}"
    closing = ("{%- else -%}" + _out(st.closing)) if st.closing else ""
    cond = "add_generation_prompt"
    if st.prompt_after_answer == "skip":
        cond += " and (messages | length == 0 or messages[-1]['role'] != 'assistant')"
    L.append("{%- if " + cond + " -%}" + gen + closing + "{%- endif -%}")
    return "\n".join(x for x in L if x)
