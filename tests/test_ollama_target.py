"""The Ollama target: Modelfiles whose TEMPLATE, run by a real Go text/template engine driven the
way Ollama drives it (tmplc.engines.ollama), renders exactly like the reference renderer.

Ollama's conventions, applied to the reference side of every comparison:
- consecutive same-role messages are merged with "\\n\\n" before rendering;
- no BOS at the start (Ollama's runtime adds it);
- generation prompt when the last message is not an assistant message, otherwise the trailing
  assistant message is continued (reference ``continue_final_message=True``);
- the Modelfile SYSTEM is the format's default system message.

Every Go render of one test (or of one hypothesis example) goes through ONE ``render_ollama`` call.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tmplc.engines.ollama import GoNotFoundError, OllamaRenderError, find_go, harness_binary, render_ollama
from tmplc import parse_spec
from tmplc.errors import MessageError, TmplcError
from tmplc.ir import (ChatFormat, FinalAnswer, Metadata, SpecialToken, Structure, SystemBlock, ThinkBlock, Turn,
                      fragment)
from tmplc.registry import registry
from tmplc.targets.conventions import ollama_prompt_mode
from tmplc.targets.ollama import (
    FROM_PLACEHOLDER,
    TargetError,
    go_string,
    modelfile_fields,
    parse_modelfile,
    to_ollama,
)

from strategies import chat_formats, conversations, with_date_format
from conftest import missing_fixture, ollama_merge



@pytest.fixture(scope="module", autouse=True)
def go_harness() -> None:
    """Build the harness once; without Go, skip locally but fail on CI."""
    try:
        find_go()
    except GoNotFoundError as exc:
        missing_fixture(f"Go ({exc})", "apt-get install golang-go")
    harness_binary()


# ------------------------------------------------------------------------------------------
# helpers

SENTINEL = "\x00\ue000tmplc-BOS\ue001\x00"
ERROR = object()
DAY = datetime.date(2024, 2, 29)  # the day of {DATE=...} in every comparison (the harness's test hook)


def u(t: str) -> dict:
    return {"role": "user", "content": t}


def a(t: str) -> dict:
    return {"role": "assistant", "content": t}


def s(t: str) -> dict:
    return {"role": "system", "content": t}


def expected(fmt: ChatFormat, msgs: list[dict], date: datetime.date = DAY):
    """The reference rendering under Ollama's conventions (on ``date``), or ERROR when the
    reference refuses."""
    m = ollama_merge(msgs)
    try:
        out = fmt.render(m, bos_token=SENTINEL, date=date, **ollama_prompt_mode(m))
    except MessageError:
        return ERROR
    if out.startswith(SENTINEL):
        out = out[len(SENTINEL):]
    return out.replace(SENTINEL, fmt.meta.bos_token or "")


def untrimmed(fmt: ChatFormat) -> ChatFormat:
    """What a format with |trim/|lstrip/|rstrip renders as under allow_untrimmed: contents as sent,
    the default system message stripped (on its side) at compile time; everything else kept."""
    st_ = fmt.structure
    sb = st_.system
    if sb is not None:
        default = sb.content(sb.default) if sb.default is not None else None
        sb = replace(sb, trim=False, default=default)
    return ChatFormat(replace(st_, system=sb, user=st_.user.changed(trim=False),
                              assistant=st_.assistant.changed(trim=False)), fmt.meta)


def has_trim(fmt: ChatFormat) -> bool:
    st_ = fmt.structure
    return st_.user.trim or st_.assistant.trim or (st_.system is not None and st_.system.trim)


def stripped(msgs: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"].strip()} for m in msgs]


@functools.lru_cache(maxsize=None)
def fields_of(modelfile: str) -> dict:
    return modelfile_fields(modelfile)


@functools.lru_cache(maxsize=None)
def modelfile_for(fmt: ChatFormat) -> str:
    return to_ollama(fmt, allow_untrimmed=True)


class Batch:
    """Collects (Modelfile, messages, expected) cases and renders them all in one Go call."""

    def __init__(self) -> None:
        self.jobs: list[dict] = []
        self.cases: list[tuple[str, list[dict], object]] = []

    def add(self, modelfile: str, msgs: list[dict], want, label: str = "", date: datetime.date = DAY) -> None:
        f = fields_of(modelfile)
        self.jobs.append({"template": f["template"], "messages": msgs, "system": f["system"], "date": date})
        self.cases.append((label, msgs, want))

    def check(self) -> int:
        results = render_ollama(self.jobs)
        failures = []
        for (label, msgs, want), got, job in zip(self.cases, results, self.jobs):
            if want is ERROR:
                ok = isinstance(got, OllamaRenderError) and "tmplc: " in got.message
            else:
                ok = got == want
            if not ok:
                failures.append(f"{label}: messages={msgs!r}\n  system={job['system']!r}\n"
                                f"  expected={'<error>' if want is ERROR else want!r}\n  got     ={got!r}\n"
                                f"  template:\n{job['template']}")
        assert not failures, f"{len(failures)} of {len(self.cases)} differ; first:\n" + failures[0]
        return len(self.cases)


def add_format_cases(batch: Batch, fmt: ChatFormat, convs: list[list[dict]], label: str) -> None:
    """Every conversation, through the Modelfile of ``fmt`` (allow_untrimmed when needed)."""
    mf = modelfile_for(fmt)
    if has_trim(fmt):
        # documented difference: contents as sent; exact for contents without edge whitespace
        for c in convs:
            batch.add(mf, c, expected(untrimmed(fmt), c), label + " (untrimmed)")
            batch.add(mf, stripped(c), expected(fmt, stripped(c)), label + " (pre-stripped)")
    else:
        for c in convs:
            batch.add(mf, c, expected(fmt, c), label)


def answer_rules(fmt) -> bool:
    """Whether the format has answer rules (|drop_think..., |lstrip_nl, the final answer's own
    rule or {THINK} block), which Go templates cannot carry (no string search, split or strip),
    or tool blocks, whose JSON Go's encoding/json cannot write in the format's layout."""
    a = fmt.structure.assistant
    return bool(fmt.structure.tools is not None or a.drop_think or a.lstrip_nl or a.final is not None or a.think is not None or a.empty is not None
                or a.rule.wraps_nonempty
                or fmt.structure.closing)


# the entries Ollama can carry: answer rules (deepseek-r1's |drop_think, qwen3-thinking's) and
# tool JSON (granite-4.x-tools, llama-3.1-tools, qwen2.5-tools, qwen3-tools) cannot be carried by a Go template, which test_registry_entries_ollama_cannot_carry_are_refused asserts
REGISTRY = sorted(n for n in registry if not answer_rules(registry[n]))

NASTY_CONVERSATIONS = [
    [u("Hi")],
    [u("Hi"), a("Hello!")],
    [s("Be brief."), u("Hi"), a("Hello!"), u("Bye")],
    [s(""), u(""), a("")],
    [s(" pad \n"), u("\n{{ .Content }}\n"), a('say """hi"""\n'), u('"""')],
    [u("a"), u("b"), a("c"), a("d"), u("e")],  # merged by Ollama
    [s("x"), s("y"), u("q")],  # two system messages merge into one
    [a("I start."), u("ok")],
    [u("q"), s("late system")],  # refused (reference: system only first)
    [u("x"), {"role": "tool", "content": "1"}],  # refused (unknown role)
    [s("only a system message")],
    [u("<s>[INST] </s> <|eot_id|> <|im_end|> {% raw %} \\ \t é 日本 🙂 \u00a0\u200b")],
]


# ------------------------------------------------------------------------------------------
# equality with the reference


def test_registry_is_not_empty() -> None:
    assert len(REGISTRY) >= 2 and "chatml" in REGISTRY


def test_registry_entries_ollama_cannot_carry_are_refused() -> None:
    refused = sorted(set(registry) - set(REGISTRY))
    assert refused == ["deepseek-r1", "granite-4.0-tools", "granite-4.1-tools", "llama-3.1-tools", "llama-3.2-tools",
                       "mistral-v7-tekken-tools", "qwen2.5-tools", "qwen3-thinking", "qwen3-tools"]
    # a tool format is refused for its JSON first (Ollama's encoding/json cannot write tojson's layout)
    for name in ("granite-4.0-tools", "granite-4.1-tools", "mistral-v7-tekken-tools", "qwen2.5-tools", "qwen3-tools"):
        with pytest.raises(TargetError, match=r"tools, tool calls and tool results.*encoding/json.*\(', ', ': '\)"):
            to_ollama(registry[name], allow_untrimmed=True)
    # Llama 3.1's tool list is tojson(indent=4): Python's indented layout, which Go's encoding/json cannot write
    with pytest.raises(TargetError, match=r"tools, tool calls and tool results.*encoding/json.*\(',', ': '\)"):
        to_ollama(registry["llama-3.1-tools"], allow_untrimmed=True)
    # Qwen3-Coder's XML tool list writes values as Python's str() does, which Go's templates cannot
    from dataclasses import replace

    qwen3 = registry["qwen3-tools"]
    xml = replace(qwen3, structure=replace(qwen3.structure, tools=replace(qwen3.structure.tools, tool_layout="xml")))
    with pytest.raises(TargetError, match=r"tools, tool calls and tool results.*each tool as XML.*str\(\)"):
        to_ollama(xml, allow_untrimmed=True)
    filters = {"deepseek-r1": "{OUTPUT|drop_think}", "qwen3-thinking": "{OUTPUT|drop_think_lstrip_nl}"}
    for name in ("deepseek-r1", "qwen3-thinking"):
        with pytest.raises(TargetError, match=r"drop_think.*cannot search or split a string") as e:
            to_ollama(registry[name], allow_untrimmed=True)
        assert f"({filters[name]})" in str(e.value) and f"format {name!r}" in str(e.value)
    # qwen3 is the reasoning entry's layout without its rules: carried
    assert "qwen3" in REGISTRY


def test_registry_fixed_conversations_in_one_call() -> None:
    batch = Batch()
    for name in REGISTRY:
        add_format_cases(batch, registry[name], NASTY_CONVERSATIONS, name)
    assert batch.check() >= len(REGISTRY) * len(NASTY_CONVERSATIONS)


# Drawing is what costs time here (not Go): each example draws a few conversations and renders
# them with every format, in one Go call.
@settings(max_examples=30)
@given(st.lists(conversations(max_exchanges=4), min_size=3, max_size=3))
def test_registry_random_conversations(convs) -> None:
    batch = Batch()
    for name in REGISTRY:
        add_format_cases(batch, registry[name], convs, name)
    batch.check()


@settings(max_examples=40)
@given(st.lists(chat_formats(), min_size=6, max_size=6),
       st.lists(conversations(max_exchanges=3), min_size=3, max_size=3))
def test_random_formats(formats, convs) -> None:
    batch = Batch()
    refused = 0
    for k, fmt in enumerate(formats):
        try:
            add_format_cases(batch, fmt, convs, f"format {k}: {fmt.structure}")
        except TargetError as exc:
            # only the documented refusals: a leading BOS that depends on content emptiness,
            # answer rules ({OUTPUT|drop_think}..., |lstrip_nl, the final answer's own rule: Go
            # templates cannot search, split or strip a string), and a date that is not
            # YYYY-MM-DD (Ollama's currentDate)
            a = fmt.structure.assistant
            earlier = a.drop_think or a.lstrip_nl
            assert "starts with {BOS}" in str(exc) or (
                a.drop_think and "|drop_think" in str(exc)) or (
                not a.drop_think and a.lstrip_nl and "{OUTPUT|lstrip_nl}" in str(exc)) or (
                not earlier and fmt.structure.closing and "({END})" in str(exc)) or (
                not (earlier or fmt.structure.closing) and a.empty is not None and "({EMPTY})" in str(exc)) or (
                not (earlier or fmt.structure.closing or a.empty) and a.rule.wraps_nonempty
                and "{NONEMPTY}" in str(exc)) or (
                not (earlier or fmt.structure.closing or a.empty or a.rule.wraps_nonempty) and a.think is not None
                and "{THINK}" in str(exc)) or (
                not (earlier or fmt.structure.closing or a.empty or a.rule.wraps_nonempty or a.think)
                and a.final is not None
                and "final answer" in str(exc)) or (
                fmt.structure.final_scope != "last" and "ends answers other than the conversation" in str(exc)) or (
                "{DATE=" in str(exc) and "YYYY-MM-DD" in str(exc)), str(exc)
            assert answer_rules(fmt) or "|drop_think" not in str(exc) and "final answer" not in str(exc)
            refused += "starts with {BOS}" in str(exc)
    if batch.jobs:
        batch.check()
    assert refused < 6


def test_consecutive_same_role_messages_are_merged() -> None:
    fmt = registry["chatml"]
    mf = modelfile_fields(to_ollama(fmt))
    msgs = [u("a"), u("b"), a("c"), a("d"), u("e")]
    (got,) = render_ollama([{"template": mf["template"], "messages": msgs, "system": mf["system"]}])
    assert got == fmt.render([u("a\n\nb"), a("c\n\nd"), u("e")], add_generation_prompt=True)
    assert got == (
        "<|im_start|>user\na\n\nb<|im_end|>\n<|im_start|>assistant\nc\n\nd<|im_end|>\n"
        "<|im_start|>user\ne<|im_end|>\n<|im_start|>assistant\n"
    )


def test_trailing_assistant_is_a_prefill_and_user_gets_the_generation_prompt() -> None:
    mf = modelfile_fields(to_ollama(registry["chatml"]))
    jobs = [{"template": mf["template"], "messages": m} for m in ([u("x")], [u("x"), a("The answer is")])]
    assert render_ollama(jobs) == [
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\nThe answer is",
    ]


def test_refusals_are_template_errors_naming_the_reason() -> None:
    mf = modelfile_fields(to_ollama(registry["chatml"]))
    jobs = [{"template": mf["template"], "messages": m}
            for m in ([u("q"), s("late")], [u("q"), {"role": "tool", "content": "1"}])]
    r = render_ollama(jobs)
    assert isinstance(r[0], OllamaRenderError) and "only allowed as the first message" in r[0].message
    assert isinstance(r[1], OllamaRenderError) and "unknown role" in r[1].message


# ------------------------------------------------------------------------------------------
# BOS, EOS, stops, FROM


def bos_format(preamble, user_prefix, system=None, bos="<s>", eos="</s>") -> ChatFormat:
    return ChatFormat(Structure(preamble=fragment(preamble), system=system, user=Turn(prefix=fragment(user_prefix), suffix=fragment([" [/INST]"])), assistant=Turn(prefix=fragment([" "]), suffix=fragment([" ", SpecialToken("EOS")]))),
                      Metadata(name="t", bos_token=bos, eos_token=eos))


def test_no_bos_and_literal_eos() -> None:
    for name in REGISTRY:
        fmt = registry[name]
        mf = to_ollama(fmt, allow_untrimmed=True)
        tmpl = modelfile_fields(mf)["template"]
        assert "range $i, $_ := .Messages" in tmpl and "$last := eq (len (slice $.Messages $i)) 1" in tmpl
        assert "loop.last" not in tmpl and "bos_token" not in tmpl
        assert "{BOS}" not in mf and "{EOS}" not in mf
        if fmt.meta.bos_token and not any(
                SpecialToken("BOS") in f for f in (fmt.structure.user.prefix, fmt.structure.assistant.suffix,
                                                    fmt.structure.user.suffix, fmt.structure.assistant.prefix)):
            assert fmt.meta.bos_token not in tmpl, name


def test_llama2_style_bos_is_dropped_only_where_it_leads() -> None:
    sb = SystemBlock(placement="first_user", prefix=fragment(["<<SYS>>\n"]), suffix=fragment(["\n<</SYS>>\n\n"]))
    fmt = bos_format([], [SpecialToken("BOS"), "[INST] "], sb)
    mf = modelfile_fields(to_ollama(fmt))
    batch = Batch()
    msgs = [u("a"), a("b"), u("c")]
    batch.add(to_ollama(fmt), msgs, "[INST] a [/INST] b </s><s>[INST] c [/INST] ")
    batch.add(to_ollama(fmt), [s("S")] + msgs,
              "[INST] <<SYS>>\nS\n<</SYS>>\n\na [/INST] b </s><s>[INST] c [/INST] ")
    batch.add(to_ollama(fmt), [a("x"), u("y")], " x </s><s>[INST] y [/INST] ")
    batch.check()
    assert mf["template"].count("<s>") == 1


def test_leading_bos_of_the_preamble_is_dropped() -> None:
    fmt = bos_format([SpecialToken("BOS"), "HEAD\n"], ["[INST] "])
    tmpl = modelfile_fields(to_ollama(fmt))["template"]
    assert "<s>" not in tmpl and tmpl.startswith("HEAD")


def test_bos_inside_turns_needs_a_bos_token() -> None:
    fmt = bos_format(["H"], [SpecialToken("BOS"), "[INST] "], bos=None)
    with pytest.raises(TargetError, match="bos_token"):
        to_ollama(fmt)
    fmt = bos_format(["H"], ["[INST] "], eos=None)
    with pytest.raises(TargetError, match="eos_token"):
        to_ollama(fmt)


def test_ambiguous_leading_bos_is_refused() -> None:
    # no preamble, empty user prefix: whether the render starts with the BOS of the user
    # suffix depends on whether the first user content is empty
    fmt = ChatFormat(Structure(preamble=(), system=None, user=Turn(prefix=(), suffix=fragment([SpecialToken("BOS"), "x"])), assistant=Turn(prefix=fragment(["A:"]), suffix=())),
                     Metadata(name="odd", bos_token="<s>", eos_token="</s>"))
    with pytest.raises(TargetError, match="starts with \\{BOS\\}"):
        to_ollama(fmt)


def bos_layouts() -> list[ChatFormat]:
    """Formats with {BOS} at the start of each piece that can come first (and empty pieces around
    it), in every system placement, with and without a default system message."""
    B, X = SpecialToken("BOS"), "x"
    pieces = [(), fragment([B]), fragment([X]), fragment([B, X])]
    systems = [None] + [SystemBlock(placement=pl, prefix=sp, suffix=fragment([ss]) if ss else (), default=d)
                        for pl, sp, ss, d in itertools.product(("standalone", "first_user"), pieces, ("", "/S"),
                                                              (None, "d"))]
    systems += [SystemBlock(prefix=fragment(["S:"]), absent=ab) for ab in (fragment([B]), fragment([B, "N"]))]
    out = []
    for sb, up, us, ap, al in itertools.product(systems, pieces, ((), fragment([B])), pieces, ((), fragment([B]))):
        st_ = Structure(system=sb, user=Turn(prefix=up, suffix=us),
                        assistant=Turn(prefix=ap, lead=al, suffix=fragment(["/A"])))
        out.append(ChatFormat(st_, Metadata(name="bos", bos_token="<s>", eos_token="</s>")))
    return out


EMPTY_CONVERSATIONS = [[u("")], [u(""), a(""), u("")], [a(""), u("")], [s(""), u("")], [s(""), a(""), u("")],
                       [u("q")], [s("x"), u("y"), a("z"), u("w")], [a("z"), u("")], [u("q"), a("")]]


def test_leading_bos_layouts_render_exactly_or_are_refused() -> None:
    # the leading-BOS plan (read off the reference walk): every layout either renders like the
    # reference (leading BOS dropped) for empty and non-empty contents, or is refused for its BOS
    batch, refused, kept = Batch(), 0, 0
    for k, fmt in enumerate(bos_layouts()):
        try:
            add_format_cases(batch, fmt, EMPTY_CONVERSATIONS, f"layout {k}: {fmt.structure}")
            kept += 1
        except TargetError as exc:
            assert "starts with {BOS}" in str(exc), str(exc)
            refused += 1
    assert refused and kept
    batch.check()


def test_stop_parameters_and_no_sampling_parameters() -> None:
    for name in REGISTRY:
        fmt = registry[name]
        mf = to_ollama(fmt, allow_untrimmed=True)
        assert modelfile_fields(mf)["stop"] == list(fmt.stop_strings)
        params = [n for n, _ in parse_modelfile(mf) if n not in ("model", "template", "system")]
        assert set(params) <= {"stop"}, name


def test_from_placeholder_and_from_path() -> None:
    fmt = registry["chatml"]
    assert modelfile_fields(to_ollama(fmt))["from"] == FROM_PLACEHOLDER
    assert modelfile_fields(to_ollama(fmt, from_="./my model.gguf"))["from"] == "./my model.gguf"
    assert modelfile_fields(to_ollama(fmt, from_=" padded "))["from"] == " padded "
    assert fmt.to_ollama(from_="qwen2.5:7b") == to_ollama(fmt, from_="qwen2.5:7b")


def test_trim_is_refused_unless_allowed() -> None:
    trimmed = [n for n in REGISTRY if has_trim(registry[n])]
    assert trimmed, "the registry has formats with |trim (llama-3, gemma, ...)"
    with pytest.raises(TargetError, match="allow_untrimmed"):
        to_ollama(registry[trimmed[0]])
    assert "|trim" in to_ollama(registry[trimmed[0]], allow_untrimmed=True)


# ------------------------------------------------------------------------------------------
# Modelfile quoting


def chatml_with_default(default: str, stop: tuple[str, ...] = ("<|im_end|>",)) -> ChatFormat:
    sb = SystemBlock(placement="standalone", prefix=fragment(["<|im_start|>system\n"]), suffix=fragment(["<|im_end|>\n"]), default=default)
    return ChatFormat(Structure(preamble=(), system=sb, user=Turn(prefix=fragment(["<|im_start|>user\n"]), suffix=fragment(["<|im_end|>\n"])), assistant=Turn(prefix=fragment(["<|im_start|>assistant\n"]), suffix=fragment(["<|im_end|>\n"]))),
                      Metadata(name="q", eos_token="<|im_end|>", stop=stop))


TRICKY_VALUES = [
    "plain", "two  spaces", ' "quoted" ', 'ends with "', '"starts with quote', '""', '"', '"""',
    'a """ b', 'line ends with """\nnext', 'x\n"""', "back\\slash \\n \\\"", "\nleading newline",
    "trailing newline\n", "\n\n", "  ", "\ttab\t", "multi\nline\n\nvalue", "crlf\r\nline",
    "# not a comment", "TEMPLATE x", "{{ .System }}", "é 日本 🙂",
]


def test_system_values_round_trip_or_go_into_the_template() -> None:
    batch = Batch()
    in_system = 0
    for value in TRICKY_VALUES:
        fmt = chatml_with_default(value)
        mf = to_ollama(fmt)
        system = modelfile_fields(mf)["system"]
        assert system in (value, None), value
        in_system += system == value
        for c in ([u("q")], [s("mine"), u("q"), a("r")]):
            batch.add(mf, c, expected(fmt, c), repr(value))
    batch.check()
    # only what a SYSTEM line cannot hold (a line ending with the closing quote) is built in
    assert in_system >= len(TRICKY_VALUES) - 2


@pytest.mark.parametrize("value", ["<|im_end|>", "\n\n", "###", ' "x" ', '"""', "a\nb", "\\n", "#x"])
def test_stop_value_round_trips(value: str) -> None:
    fmt = chatml_with_default("d", stop=(value, "<|im_end|>"))
    assert modelfile_fields(to_ollama(fmt))["stop"] == [value, "<|im_end|>"]


def test_unwritable_stop_is_an_error() -> None:
    with pytest.raises(TargetError, match="U\\+200B"):
        to_ollama(chatml_with_default("d", stop=("a\u200bb",)))


def test_defaults_a_system_line_cannot_hold_go_into_the_template() -> None:
    batch = Batch()
    for default in ["", "nbsp\u00a0zwsp\u200b", "esc\x1b"]:
        fmt = chatml_with_default(default)
        mf = to_ollama(fmt)
        assert modelfile_fields(mf)["system"] is None
        for c in ([u("q")], [s("mine"), u("q")], [a("first"), u("q")]):
            batch.add(mf, c, expected(fmt, c), repr(default))
    batch.check()


def test_tricky_literals_in_the_layout_render_exactly() -> None:
    # layout text with quotes, triple quotes at line ends, braces, backslashes, CR, non-printables
    pieces = ['"""\n', "{{ x }}\n", "{", "}", '\\"', "\r\n", "\u00a0", "\u200b", "\t", ' "', '"""']
    batch = Batch()
    for k, p in enumerate(pieces):
        fmt = ChatFormat(Structure(preamble=fragment([p + "P"]), system=SystemBlock(placement="standalone", prefix=fragment(["S" + p]), suffix=fragment([p])), user=Turn(prefix=fragment(["U:" + p]), suffix=fragment([p])), assistant=Turn(prefix=fragment([p + "A:"]), suffix=fragment(['"""' + p]))),
                         Metadata(name=f"tricky{k}", eos_token="E"))
        mf = to_ollama(fmt)
        for c in ([u("q")], [s("sys"), u("q"), a("r")], [u('x"""'), a("\n")]):
            batch.add(mf, c, expected(fmt, c), repr(p))
    batch.check()


def test_go_string_escapes() -> None:
    assert go_string('a"b\\c\nd\te\rf') == '"a\\"b\\\\c\\nd\\te\\rf"'
    assert go_string("\u00a0\x1b\U0001F642é") == '"\\u00a0\\u001b🙂é"'


# The parser port, on the examples of Ollama's own parser rules (anchors/ollama.md §3 and
# parser/parser.go): values are trimmed, quotes may span lines, no escapes, non-printables dropped.

def test_parser_port_follows_ollamas_rules() -> None:
    def one(text: str):
        return parse_modelfile("FROM m\n" + text)[1:]

    assert one("SYSTEM You are   helpful. \n") == [("system", "You are   helpful.")]
    assert one('TEMPLATE """\n{{ .Prompt }}\n"""\n') == [("template", "\n{{ .Prompt }}\n")]
    assert one('SYSTEM "a\nb"\n') == [("system", "a\nb")]
    assert one('SYSTEM """say "hi""""\n') == [("system", 'say "hi"')]
    assert one('SYSTEM a\\nb \\"c\\"\n') == [("system", 'a\\nb \\"c\\"')]
    assert one("SYSTEM a\u00a0b\u200bc\td\x1be\n") == [("system", "abc\tde")]
    assert one('SYSTEM "a\r\nb"\n') == [("system", "a\r\nb")]
    # early termination: a content line ending with """ closes the value
    assert one('TEMPLATE """x\n  """doc"""\nSYSTEM y\n') == [("template", 'x\n  """doc'), ("system", "y")]
    with pytest.raises(TargetError):  # ... and the rest is read as commands
        one('TEMPLATE """x\n  """doc"""\n"""\n')
    assert one("PARAMETER stop <|im_end|>\nPARAMETER stop \"<|eot_id|>\"\n") == [
        ("stop", "<|im_end|>"), ("stop", "<|eot_id|>")]
    assert one("# comment\nsystem lower case\n") == [("system", "lower case")]
    with pytest.raises(TargetError, match="no FROM"):
        parse_modelfile("SYSTEM x\n")
    with pytest.raises(TargetError):
        parse_modelfile('FROM m\nSYSTEM """never closed\n')


def test_cli_compile_to_ollama(capsys) -> None:
    from tmplc.cli import main  # type: ignore[attr-defined]

    rc = main(["compile", "chatml", "--to", "ollama", "--from", "./m.gguf"])
    assert rc in (0, None)
    out = capsys.readouterr().out
    assert modelfile_fields(out)["from"] == "./m.gguf"
    assert out == to_ollama(registry["chatml"], from_="./m.gguf")


def test_errors_are_tmplc_errors() -> None:
    assert issubclass(TargetError, TmplcError) and issubclass(TargetError, ValueError)
    assert re.search(r"\bTEMPLATE\b", to_ollama(registry["chatml"]))


# ------------------------------------------------------------------------------------------
# {SYSTEM|nonempty} (skip_empty), {PROMPT=...} (prompt_only), |lstrip / |rstrip, |drop_think

SKIP_CONVERSATIONS = [
    [s(""), u("q"), a("r"), u("q2")],
    [s(""), u("q"), a("r")],
    [s(""), u("")],
    [s("Be brief."), u("q"), a("r")],
    [s(" "), u("q")],  # whitespace is not empty
    [u("q"), a("r"), u("q2")],
    [u("q")],
    [s("")],  # a lone empty system message: nothing (or the default) then the generation prompt
    [s("x")],
    [s(""), a("first")],  # refused only when a system block (or default) is pending inline
    [a("first"), u("q")],
    [u("q"), s("")],  # refused: a system message that is not first
]
# merged by Ollama into "\n\n": not empty (only for formats that do not strip: merging creates
# edge whitespace)
MERGED_EMPTY_SYSTEMS = [[s(""), s(""), u("q")], [s(""), s("x"), u("q")]]

SKIP_DEFAULTS = [None, "You are helpful.", "", "nbsp\u00a0x", " padded \n"]


def skip_format(placement: str, default, *, bos: bool = False, trim: bool = False, side: str = "both",
                preamble: tuple = ()) -> ChatFormat:
    """ChatML-like (standalone) or Llama-2-like (first_user) with {SYSTEM|nonempty}."""
    B = [SpecialToken("BOS")] if bos else []
    if placement == "standalone":
        sb = SystemBlock(placement="standalone", prefix=fragment(B + ["<|im_start|>system\n"]), suffix=fragment(["<|im_end|>\n"]), trim=trim, default=default, trim_side=side, skip_empty=True)
        user = Turn(prefix=fragment(B + ["<|im_start|>user\n"]), suffix=fragment(["<|im_end|>\n"]))
        assistant = Turn(prefix=fragment(["<|im_start|>assistant\n"]), suffix=fragment(["<|im_end|>\n"]))
    else:
        sb = SystemBlock(placement="first_user", prefix=fragment(["<<SYS>>\n"]), suffix=fragment(["\n<</SYS>>\n\n"]), trim=trim, default=default, trim_side=side, skip_empty=True)
        user = Turn(prefix=fragment(B + ["[INST] "]), suffix=fragment([" [/INST]"]))
        assistant = Turn(prefix=(), suffix=fragment([" ", SpecialToken("EOS")]), lead=fragment([" "]))
    return ChatFormat(Structure(preamble=fragment(preamble), system=sb, user=user, assistant=assistant),
                      Metadata(name=f"skip-{placement}", bos_token="<s>", eos_token="</s>"))


@pytest.mark.parametrize("placement", ["standalone", "first_user"])
def test_skip_empty_system_renders_like_the_reference(placement) -> None:
    batch = Batch()
    for default in SKIP_DEFAULTS:
        for bos in (False, True):
            for preamble in ((), ("HEAD\n",)):
                fmt = skip_format(placement, default, bos=bos, preamble=preamble)
                mf = to_ollama(fmt)
                for c in SKIP_CONVERSATIONS + MERGED_EMPTY_SYSTEMS:
                    batch.add(mf, c, expected(fmt, c), f"default={default!r} bos={bos} preamble={preamble}")
    assert batch.check() == 2 * 2 * len(SKIP_DEFAULTS) * len(SKIP_CONVERSATIONS + MERGED_EMPTY_SYSTEMS)


def test_skip_empty_exact_renders() -> None:
    """What the comparisons above mean, spelled out on ChatML with {SYSTEM|nonempty=D}."""
    fmt = skip_format("standalone", "D")
    mf = to_ollama(fmt)
    assert modelfile_fields(mf)["system"] == "D"  # SYSTEM carries the default ...
    # ... and the template holds it too: Ollama does not send SYSTEM when message 0 is a system one
    assert "<|im_start|>system\nD<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n" == \
        expected(fmt, [s(""), u("q")])
    f = fields_of(mf)
    jobs = [{"template": f["template"], "messages": m, "system": f["system"]}
            for m in ([s(""), u("q")], [u("q")], [s("mine"), u("q")])]
    assert render_ollama(jobs) == [
        "<|im_start|>system\nD<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nD<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nmine<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n",
    ]
    # without a default, an empty system message is no system block at all (Llama-2 style, the
    # leading BOS of the first turn is Ollama's)
    fmt = skip_format("first_user", None, bos=True)
    f = fields_of(to_ollama(fmt))
    jobs = [{"template": f["template"], "messages": m} for m in ([s(""), u("q")], [s("S"), u("q")])]
    assert render_ollama(jobs) == ["[INST] q [/INST]", "[INST] <<SYS>>\nS\n<</SYS>>\n\nq [/INST]"]


def test_without_skip_empty_an_empty_system_message_shows_the_block() -> None:
    fmt = skip_format("standalone", "D")
    plain = ChatFormat(replace(fmt.structure, system=replace(fmt.structure.system, skip_empty=False)), fmt.meta)
    f = fields_of(to_ollama(plain))
    (got,) = render_ollama([{"template": f["template"], "messages": [s(""), u("q")], "system": f["system"]}])
    assert got == expected(plain, [s(""), u("q")]) == \
        "<|im_start|>system\n<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n"


def test_registry_formats_with_skip_empty() -> None:
    batch = Batch()
    for name in REGISTRY:
        fmt = registry[name]
        sb = fmt.structure.system
        if sb is None:
            continue
        for default in (None, "Be nice."):
            f = ChatFormat(replace(fmt.structure, system=replace(sb, skip_empty=True, default=default)),
                           fmt.with_meta(name=name + "+nonempty").meta)
            add_format_cases(batch, f, SKIP_CONVERSATIONS + NASTY_CONVERSATIONS, f.name)
    batch.check()


def prompt_format(prompt_only: str, lead: tuple = (), bos_prefix: bool = False) -> ChatFormat:
    return ChatFormat(
        Structure(preamble=(), system=SystemBlock(placement="standalone", prefix=fragment(["<|system|>"]), suffix=fragment(["\n"])), user=Turn(prefix=fragment(["<｜User｜>"])), assistant=Turn(prefix=fragment(([SpecialToken("BOS")] if bos_prefix else []) + ["<｜Assistant｜>"]), suffix=fragment(["<｜end▁of▁sentence｜>"]), lead=fragment(lead), prompt_only=prompt_only)),
        Metadata(name="r1-like", bos_token="<s>", eos_token="<｜end▁of▁sentence｜>"))


@pytest.mark.parametrize("lead", [(), (" ",), ("</think>\n\n",)])
@pytest.mark.parametrize("prompt_only", ["<think>\n", " ", '"""\n{{ x }}'])
def test_prompt_only_follows_the_assistant_prefix_in_the_generation_prompt(prompt_only, lead) -> None:
    fmt = prompt_format(prompt_only, lead)
    mf = to_ollama(fmt)
    f = fields_of(mf)
    jobs = [{"template": f["template"], "messages": m} for m in ([u("q")], [u("q"), a("r")], [u("q"), a("r"), u("q2")])]
    lead_text = "".join(lead)
    assert render_ollama(jobs) == [
        "<｜User｜>q<｜Assistant｜>" + prompt_only,  # the generation prompt: prefix + prompt_only (no lead)
        "<｜User｜>q<｜Assistant｜>" + lead_text + "r",  # a prefill: prefix + lead + content, no prompt_only
        "<｜User｜>q<｜Assistant｜>" + lead_text + "r<｜end▁of▁sentence｜><｜User｜>q2<｜Assistant｜>" + prompt_only,
    ]
    batch = Batch()
    for c in NASTY_CONVERSATIONS + SKIP_CONVERSATIONS:
        batch.add(mf, c, expected(fmt, c))
    batch.check()


def test_registry_formats_with_prompt_only() -> None:
    batch = Batch()
    for name in REGISTRY:
        fmt = registry[name]
        for prompt_only in ("<think>\n", "\n\n"):
            f = ChatFormat(replace(fmt.structure, assistant=replace(fmt.structure.assistant, prompt_only=prompt_only)),
                           fmt.with_meta(name=name + "+prompt").meta)
            add_format_cases(batch, f, NASTY_CONVERSATIONS, f.name)
    batch.check()


def side_format(side: str, where: str = "assistant", default: str | None = None) -> ChatFormat:
    fmt = skip_format("standalone", default)
    st_ = fmt.structure
    if where == "system":
        st_ = replace(st_, system=replace(st_.system, trim=True, trim_side=side))
    else:
        st_ = replace(st_, **{where: getattr(st_, where).changed(trim=True, trim_side=side)})
    return ChatFormat(st_, fmt.meta)


@pytest.mark.parametrize("side,filt", [("left", "|lstrip"), ("right", "|rstrip"), ("both", "|trim")])
@pytest.mark.parametrize("where", ["user", "assistant", "system"])
def test_lstrip_rstrip_refused_naming_the_filter(side, filt, where) -> None:
    fmt = side_format(side, where)
    with pytest.raises(TargetError) as e:
        to_ollama(fmt)
    msg = str(e.value)
    assert f"the {where} content ({filt})" in msg and "allow_untrimmed" in msg and f"remove {filt}" in msg
    mf = to_ollama(fmt, allow_untrimmed=True)
    assert f"strips the {where} content ({filt})" in mf and "rendered as sent" in mf


def test_mixed_filters_are_all_named() -> None:
    fmt = side_format("left", "user")
    fmt = ChatFormat(replace(fmt.structure, assistant=fmt.structure.assistant.changed(trim=True, trim_side="right")), fmt.meta)
    with pytest.raises(TargetError, match=r"user content \(\|lstrip\) and the assistant content \(\|rstrip\)"):
        to_ollama(fmt)


@pytest.mark.parametrize("side", ["left", "right", "both"])
def test_allow_untrimmed_renders_sides_as_sent_and_strips_the_default_by_its_side(side) -> None:
    default = "  \n Be brief. \n "
    want_default = {"left": default.lstrip(), "right": default.rstrip(), "both": default.strip()}[side]
    batch = Batch()
    for where in ("user", "assistant", "system"):
        fmt = side_format(side, where, default=default)
        mf = to_ollama(fmt, allow_untrimmed=True)
        sysval = modelfile_fields(mf)["system"]
        if where == "system":
            assert sysval in (want_default, None)  # SYSTEM, or in the template if it cannot hold it
        for c in NASTY_CONVERSATIONS + SKIP_CONVERSATIONS:
            batch.add(mf, c, expected(untrimmed(fmt), c), f"{where} {side} (as sent)")
            batch.add(mf, stripped(c), expected(fmt, stripped(c)), f"{where} {side} (pre-stripped)")
    batch.check()
    # the default is exact even with allow_untrimmed: stripped at compile time, on its side
    fmt = side_format(side, "system", default=default)
    f = fields_of(to_ollama(fmt, allow_untrimmed=True))
    (got,) = render_ollama([{"template": f["template"], "messages": [u("q")], "system": f["system"]}])
    assert got == expected(fmt, [u("q")]) and ("<|im_start|>system\n" + want_default + "<|im_end|>") in got


def _chatml_assistant(**changes) -> ChatFormat:
    fmt = registry["chatml"]
    return ChatFormat(replace(fmt.structure, assistant=fmt.structure.assistant.changed(**changes)), fmt.meta)


@pytest.mark.parametrize("mode,filt", [
    ("last", "{OUTPUT|drop_think}"), ("first", "{OUTPUT|drop_think_first}"),
    ("last_lstrip_nl", "{OUTPUT|drop_think_lstrip_nl}"), ("last_strip_nl", "{OUTPUT|drop_think_strip_nl}"),
    ("last_trim", "{OUTPUT|drop_think_trim}"),
    ("first_lstrip_nl", "{OUTPUT|drop_think_first_lstrip_nl}"),
])
def test_drop_think_is_refused(mode, filt) -> None:
    fmt = _chatml_assistant(drop_think=mode)
    which = "first" if mode.startswith("first") else "last"
    for allow in (False, True):
        with pytest.raises(TargetError) as e:
            to_ollama(fmt, allow_untrimmed=allow)
        assert f"({filt})" in str(e.value) and "cannot search or split a string" in str(e.value)
        assert f"their {which} '</think>'" in str(e.value)


def test_lstrip_nl_is_refused() -> None:
    fmt = _chatml_assistant(lstrip_nl=True)
    assert fmt.to_spec().count("{OUTPUT|lstrip_nl}") == 2
    for allow in (False, True):
        with pytest.raises(TargetError) as e:
            to_ollama(fmt, allow_untrimmed=allow)
        assert str(e.value) == ("format 'chatml' removes leading newlines from answers ({OUTPUT|lstrip_nl}), "
                                "which an Ollama template cannot do (no string functions)")


@pytest.mark.parametrize("final", [
    FinalAnswer(),  # the final answer as sent, earlier answers trimmed
    FinalAnswer(trim=True),
    FinalAnswer(drop_think="last"),
    FinalAnswer(think=ThinkBlock("<think>\n", "\n</think>\n\n", always=True)),
])
def test_final_answer_rule_is_refused(final) -> None:
    fmt = _chatml_assistant(final=final, trim=final == FinalAnswer())
    assert fmt.structure.assistant.final == final  # a rule of its own (not normalised away)
    assert not fmt.structure.assistant.drop_think and not fmt.structure.assistant.lstrip_nl
    for allow in (False, True):
        with pytest.raises(TargetError) as e:
            to_ollama(fmt, allow_untrimmed=allow)
        msg = str(e.value)
        assert msg.startswith("format 'chatml' renders the final answer's content by its own rule (the second "
                              "{OUTPUT}'s filters or a {THINK} block: reasoning kept or re-wrapped)")
        assert msg.endswith("Ollama's template functions cannot search, split or strip a string")


def test_answer_rule_refusals_come_before_the_date_and_trim_ones() -> None:
    """The first rule that cannot be carried is the one named: drop_think, then lstrip_nl, then the
    final answer's rule; a trim or a date alone would be a different refusal."""
    dated = with_date_format(parse_spec("[{DATE=%Y-%m-%d}]" + "U:{INPUT}\nA:{OUTPUT|rstrip}\n" * 2), "%d %b")
    both = ChatFormat(replace(dated.structure, assistant=dated.structure.assistant.changed(
        drop_think="last", lstrip_nl=True, final=FinalAnswer())), dated.meta)
    with pytest.raises(TargetError, match=re.escape("({OUTPUT|drop_think})")):
        to_ollama(both)
    nodrop = ChatFormat(replace(both.structure, assistant=both.structure.assistant.changed(drop_think="")), both.meta)
    with pytest.raises(TargetError, match=re.escape("({OUTPUT|lstrip_nl})")):
        to_ollama(nodrop)
    final_only = ChatFormat(replace(nodrop.structure, assistant=nodrop.structure.assistant.changed(lstrip_nl=False,
                                                                         final=FinalAnswer(drop_think="last"))),
                            both.meta)
    with pytest.raises(TargetError, match="the final answer's content by its own rule"):
        to_ollama(final_only)
    plain = ChatFormat(replace(final_only.structure, assistant=replace(final_only.structure.assistant, final=None)),
                       both.meta)
    with pytest.raises(TargetError, match=r"\{DATE=%d %b\}"):
        to_ollama(plain, allow_untrimmed=True)


@pytest.mark.parametrize("placement", ["standalone", "first_user"])
@pytest.mark.parametrize("default", [None, "D"])
def test_generation_prompt_after_a_lone_empty_system_message_drops_its_leading_bos(placement, default) -> None:
    # nothing is rendered before the generation prompt, so its {BOS} is the one Ollama adds
    fmt = skip_format(placement, default)
    st_ = fmt.structure
    fmt = ChatFormat(replace(st_, assistant=replace(st_.assistant, prefix=fragment(
        [SpecialToken("BOS"), "<A>"]), prompt_only="<think>\n")), fmt.meta)
    mf = to_ollama(fmt)
    batch = Batch()
    for c in SKIP_CONVERSATIONS + MERGED_EMPTY_SYSTEMS:
        batch.add(mf, c, expected(fmt, c), placement)
    batch.check()
    f = fields_of(mf)
    (got,) = render_ollama([{"template": f["template"], "messages": [s("")], "system": f["system"]}])
    assert got == ("<A><think>\n" if placement == "first_user" or default is None
                   else "<|im_start|>system\nD<|im_end|>\n<s><A><think>\n")


# ------------------------------------------------------------------------------------------
# {DATE=...}: Ollama's currentDate (YYYY-MM-DD) or a refusal

DATE_CONVERSATIONS = [[u("q")], [s("S"), u("q"), a("r"), u("q2")], [u("q"), a("r")], [a("first"), u("q")],
                      [s("S")], [u("q"), s("late")]]


def dated_chatml(date_spec: str, where: str) -> ChatFormat:
    """ChatML with ``date_spec`` (``{DATE=...}`` and text) in the piece ``where``."""
    p = dict.fromkeys(WHERES, "")
    p[where] = date_spec
    turn = ("<|im_start|>user\n" + p["user prefix"] + "{INPUT}" + p["user suffix"] + "<|im_end|>\n"
            "<|im_start|>assistant\n" + p["assistant prefix"] + "{OUTPUT}" + p["assistant suffix"] + "<|im_end|>\n")
    spec = (("{BOS}" + date_spec + "{SPLIT}" if where == "preamble" else "")
            + "<|im_start|>system\n" + p["system prefix"] + "{SYSTEM}" + p["system suffix"] + "<|im_end|>\n"
            + turn + turn)
    # the spec language accepts date conversions only: other formats are set in the IR
    formats = re.findall(r"\{DATE=([^{}]*)\}", spec)
    fmt = parse_spec(re.sub(r"\{DATE=[^{}]*\}", "{DATE=%Y}", spec)).with_meta(
        name="dated", bos_token="<s>", eos_token="<|im_end|>")
    if formats:
        fmt = with_date_format(fmt, formats[0])
    assert fmt.structure.dated, spec
    return fmt


WHERES = ["preamble", "system prefix", "system suffix", "user prefix", "user suffix", "assistant prefix",
          "assistant suffix"]


@pytest.mark.parametrize("date_spec", ["{DATE=%Y-%m-%d}", "Today is {DATE=%Y-%m-%d}.\n",
                                       "{DATE=[%F] 100%% }", "{{{DATE=%Y-%m-%d}}}", '{DATE=" %Y-%m-%d"}'])
@pytest.mark.parametrize("where", WHERES)
def test_iso_date_is_ollamas_current_date(date_spec, where) -> None:
    """{DATE=%Y-%m-%d} (with text around it) is {{ currentDate }}: through the real Go engine, on
    fixed days (the harness's test hook), every conversation renders like the reference."""
    fmt = dated_chatml(date_spec, where)
    mf = to_ollama(fmt)
    assert "{{ currentDate }}" in fields_of(mf)["template"] and "currentDate" in mf.split("FROM")[0]
    batch = Batch()
    for day in (DAY, datetime.date(1999, 12, 31), datetime.date(2031, 1, 1)):
        for c in DATE_CONVERSATIONS:
            batch.add(mf, c, expected(fmt, c, day), f"{where} {day}", day)
    batch.check()


def test_iso_date_without_the_hook_is_todays_date() -> None:
    """Without the test hook the harness reads the clock, as Ollama does: today's reference."""
    fmt = dated_chatml("Today: {DATE=%Y-%m-%d}\n", "system prefix")
    f = fields_of(to_ollama(fmt))
    before = datetime.date.today()
    (got,) = render_ollama([{"template": f["template"], "messages": [s("S"), u("q")]}])
    assert got in {expected(fmt, [s("S"), u("q")], d) for d in (before, datetime.date.today())}


@pytest.mark.parametrize("fmt_", ["%d %b %Y", "%B %d, %Y", "%A", "%Y/%m/%d", "%y-%m-%d", "%Y-%m", "%-d.%m.%Y",
                                  "%Y-%m-%d %H:%M"])
@pytest.mark.parametrize("where", ["preamble", "system prefix", "user prefix", "assistant suffix"])
def test_other_date_formats_are_refused_naming_the_format(fmt_, where) -> None:
    fmt = dated_chatml("{DATE=" + fmt_ + "}", where)
    for allow in (False, True):
        with pytest.raises(TargetError) as e:
            to_ollama(fmt, allow_untrimmed=allow)
        msg = str(e.value)
        assert "{DATE=" + fmt_ + "}" in msg and where in msg and "currentDate" in msg and "YYYY-MM-DD" in msg


def test_date_refusal_through_the_cli(capsys) -> None:
    from tmplc.cli import main  # type: ignore[attr-defined]

    rc = main(["compile", dated_chatml("{DATE=%d %b %Y}\n", "system prefix").to_spec(), "--to", "ollama"])
    err = capsys.readouterr().err
    assert rc not in (0, None) and "{DATE=%d %b %Y}" in err and "YYYY-MM-DD" in err


# ------------------------------------------------------------------------------------------
# {NOSYSTEM}...{/NOSYSTEM} (absent): rendered instead of the standalone block without a system message

_TURNS = "<|U|>{INPUT}<|E|>\n<|A|>{OUTPUT}<|E|>\n" * 2


@pytest.mark.parametrize("spec", [
    "{NOSYSTEM}<|S|>you are helpful.{EOS}{/NOSYSTEM}<|S|>you are helpful.\n\n{SYSTEM}{EOS}" + _TURNS,
    "{BOS}{NOSYSTEM}<|S|>you are helpful.{EOS}{/NOSYSTEM}<|S|>you are helpful.\n\n{SYSTEM}{EOS}" + _TURNS,
    "{NOSYSTEM}{BOS}<|S|>Today is {DATE=%Y-%m-%d}.\n{/NOSYSTEM}{BOS}<|S|>{SYSTEM}\n" + _TURNS,
    "{NOSYSTEM}<|S|>Today is {DATE=%Y-%m-%d}.\n{/NOSYSTEM}<|S|>{SYSTEM|nonempty}\n" + _TURNS,
    "{NOSYSTEM}{BOS}<|S|>none{/NOSYSTEM}{BOS}<|S|>{SYSTEM|nonempty}\n" + _TURNS,
    "P{NOSYSTEM}<|S|>none\n{/NOSYSTEM}<|S|>{SYSTEM|nonempty}\n" + _TURNS,
])
def test_nosystem_text_renders_like_the_reference(spec) -> None:
    fmt = parse_spec(spec).with_meta(name="nosys", bos_token="<s>", eos_token="</s>")
    assert fmt.structure.system.absent is not None
    mf = to_ollama(fmt)
    batch = Batch()
    for c in SKIP_CONVERSATIONS + NASTY_CONVERSATIONS:
        batch.add(mf, c, expected(fmt, c), spec)
    batch.check()


def test_nosystem_date_must_be_iso() -> None:
    fmt = parse_spec("{NOSYSTEM}<|S|>Today is {DATE=%d %b %Y}.\n{/NOSYSTEM}<|S|>{SYSTEM}\n" + _TURNS)
    with pytest.raises(TargetError, match=r"\{DATE=%d %b %Y\} in the \{NOSYSTEM\} text.*YYYY-MM-DD"):
        to_ollama(fmt)


def test_a_refused_empty_answer_is_a_template_error_and_other_answers_render() -> None:
    """``{OUTPUT|no_empty_answer}`` (Ministral 3's template raises on an empty answer): the
    reference refuses it (MessageError), the Modelfile's template fails naming the reason, and
    every other conversation renders as the reference does (a run of Go's text/template)."""
    fmt = parse_spec("<s>[INST]{INPUT}[/INST]{SPLIT}{OUTPUT}</s>[INST]{INPUT}[/INST]{SPLIT}{OUTPUT|no_empty_answer}</s>",
                     bos_token="<s>", eos_token="</s>")
    assert fmt.structure.refuses_empty_answers
    empty = [u("q"), a(""), u("q2")]
    with pytest.raises(MessageError, match="refuses an empty answer"):
        fmt.render(empty)
    mf = modelfile_fields(to_ollama(fmt))
    r = render_ollama([{"template": mf["template"], "messages": empty}])
    assert isinstance(r[0], OllamaRenderError) and "refuses an empty answer" in r[0].message
    batch = Batch()
    add_format_cases(batch, fmt, [[u("q"), a("x")], [u("q"), a(" "), u("q2")], [u("q")]], "no_empty_answer")
    assert batch.check() == 3
