"""The llama.cpp target, proven by llama.cpp's own engines (C++ Jinja of ``--jinja`` and the built-ins).

Every registry entry and hypothesis-random formats x random conversations (tests/strategies.py)
rendered by llama.cpp's engine equal the reference, with llama.cpp's conventions: a leading BOS
is stripped when the GGUF says add_bos_token; a format without a system slot sees llama-server's
merge of the system message into the next one; add_generation_prompt on and off.  Built-in names
are checked by rendering through the built-in itself.  All renders of a test go to the engine in
one batch.  Needs the llama-cpp-python sdist and a C++ compiler: skipped without them, failed
when CI=true.
"""

from __future__ import annotations

import re

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import chat_formats, conversations, with_date_format
from conftest import missing_fixture
from tmplc.engines import llamacpp as engine
from tmplc.engines.llamacpp import (
    LlamaCppRenderError,
    LlamaCppUnavailableError,
    detect_builtin,
    ensure_llamacpp_driver,
    render_llamacpp,
    run_driver_jobs,
)
from tmplc import parse_spec
from tmplc.errors import MessageError
from tmplc.ir import (DROP_THINK, ChatFormat, ContentRule, FinalAnswer, Metadata, SpecialToken, Structure, SystemBlock, Text,
                      ThinkBlock, Turn)
from tmplc.registry import registry
from tmplc.targets.jinja import to_jinja
from tmplc.targets.llamacpp import (
    ASCII_SPACES,
    DATE_DIRECTIVES,
    NON_ASCII_SPACES,
    LlamaCppTarget,
    TargetError,
    escape_arg,
    expected_llamacpp,
    to_llamacpp,
)

# --- engine access ----------------------------------------------------------------------------

_LINE_SEPARATORS = "\x85\u2028\u2029"


def _wrapper_splits_on_line_separators() -> bool:
    out = render_llamacpp([{"template": "{{ messages[0]['content'] }}",
                            "messages": [{"role": "user", "content": _LINE_SEPARATORS}]}])
    return out != [_LINE_SEPARATORS]


def render(jobs: Sequence[Mapping[str, Any]]) -> list[str | LlamaCppRenderError]:
    return render_llamacpp(jobs)


@pytest.fixture(scope="module")
def driver():
    """Build (or reuse) the driver; skip when llama.cpp cannot be had, fail under CI=true."""
    try:
        path = ensure_llamacpp_driver()
    except LlamaCppUnavailableError as exc:
        missing_fixture(f"llama.cpp's engine ({exc})", "run: python scripts/fetch_llamacpp.py --build")
    return path


# --- helpers ----------------------------------------------------------------------------------

TARGETS = {name: to_llamacpp(registry[name]) for name in registry}
DAY = datetime.date(2024, 2, 29)  # the day of {DATE=...} in comparisons (the driver's test hook)


def _job(fmt: ChatFormat, target: LlamaCppTarget, messages, agp: bool, day: datetime.date = DAY) -> dict:
    return {"template": target.chat_template, "messages": messages, "bos_token": fmt.meta.bos_token or "",
            "eos_token": fmt.meta.eos_token or "", "add_generation_prompt": agp, "add_bos": target.add_bos_token,
            "date": day}


def _expected(fmt: ChatFormat, target: LlamaCppTarget, messages, agp: bool,
              day: datetime.date | None = DAY) -> str | None:
    try:
        return expected_llamacpp(fmt, messages, agp, target.add_bos_token, day)
    except MessageError:
        return None


def _check_batch(cases: list[tuple], day: datetime.date = DAY) -> None:
    """cases: (name, fmt, target, messages, add_generation_prompt[, day])."""
    cases = [c if len(c) == 6 else (*c, day) for c in cases]
    jobs = [_job(fmt, tgt, msgs, agp, d) for (_, fmt, tgt, msgs, agp, d) in cases]
    results = render(jobs)
    failures = []
    for (name, fmt, tgt, msgs, agp, d), got in zip(cases, results):
        exp = _expected(fmt, tgt, msgs, agp, d)
        if exp is None:  # the reference refuses: llama.cpp must raise too (raise_exception)
            if not isinstance(got, LlamaCppRenderError):
                failures.append((name, msgs, agp, "reference refuses", got))
        elif got != exp:
            failures.append((name, msgs, agp, exp, got))
        elif tgt.add_bos_token and msgs and msgs[0]["role"] != "assistant":
            # the BOS token comes back from the tokenizer: the reference starts with it
            ref = fmt.render(expected_input(fmt, msgs), add_generation_prompt=agp, date=d)
            if not ref.startswith(fmt.meta.bos_token):
                failures.append((name, msgs, agp, "reference without leading BOS", ref))
    assert not failures, f"{len(failures)} of {len(cases)} differ; first: {failures[0]!r}"


def expected_input(fmt: ChatFormat, msgs: list) -> list:
    if fmt.structure.system is None and msgs and msgs[0]["role"] == "system":
        merged = [dict(m) for m in msgs[1:]]
        if merged:
            merged[0]["content"] = msgs[0]["content"] + "\n" + merged[0]["content"]
        return merged
    return msgs


# --- the Jinja path (llama-server --jinja) ----------------------------------------------------

@settings(max_examples=8)
@given(st.data())
def test_registry_renders_like_reference_in_llamacpp(driver, data) -> None:
    convs = data.draw(st.lists(conversations(), min_size=6, max_size=6), label="conversations")
    cases = [(name, registry[name], TARGETS[name], c, agp)
             for name in registry for c in convs for agp in (False, True)]
    _check_batch(cases)


@settings(max_examples=30)
@given(st.data())
def test_random_formats_render_like_reference_in_llamacpp(driver, data) -> None:
    fmts = data.draw(st.lists(chat_formats(), min_size=4, max_size=4), label="formats")
    cases = []
    for fmt in fmts:
        tgt = to_llamacpp(fmt, check_builtins=False)
        for c in data.draw(st.lists(conversations(), min_size=4, max_size=4), label="conversations"):
            for agp in (False, True):
                cases.append(("generated", fmt, tgt, c, agp))
    _check_batch(cases, data.draw(st.dates(datetime.date(1970, 1, 2), datetime.date(2099, 12, 31)), label="day"))


def test_unicode_whitespace_edges_are_stripped_like_python(driver) -> None:
    # llama.cpp's |trim only strips ASCII whitespace; the target's tmplc_strip macro is exact.
    edges = ["", " ", "\t\n", *NON_ASCII_SPACES, "\u3000 \xa0\n\x1c", " \u2028\u2029\x85 "]
    cores = ["x", "é", "日本 語", "🙂", "\xa9", "\u3001", "a\u3000b", ""]
    contents = [l + c + r for c in cores for l in edges[::3] + ["\u3000"] for r in edges]
    contents += [" \u3000 " * 200 + "x" + "\xa0\n" * 200, "y" * 20000]
    cases = []
    for name in ("llama-3", "mistral-v3"):
        fmt = registry[name]
        for i in range(0, len(contents), 2):
            msgs = [{"role": "user", "content": contents[i]}]
            if i + 1 < len(contents):
                msgs.append({"role": "assistant", "content": contents[i + 1]})
            cases.append((name, fmt, TARGETS[name], msgs, True))
    _check_batch(cases)


def test_shared_hf_template_differs_only_by_trim(driver) -> None:
    # What the lead should know: to_jinja's |trim keeps U+3000 in llama.cpp.
    fmt = registry["llama-3"]
    msgs = [{"role": "user", "content": "\u3000hi\u3000"}]
    hf, = render([{"template": to_jinja(fmt, generation_tags=False), "messages": msgs,
                   "bos_token": fmt.meta.bos_token}])
    assert "\u3000hi\u3000" in hf
    assert fmt.render(msgs).endswith("\n\nhi<|eot_id|>")
    for name in registry:
        f = registry[name]
        trims = any(t is not None and t.trim for t in (f.structure.user, f.structure.assistant, f.structure.system))
        assert (TARGETS[name].chat_template != to_jinja(f, generation_tags=False)) == trims, name


def _unused_macros(template: str) -> list[str]:
    return [m for m in re.findall(r"\{%- macro (tmplc_\w+)\(", template) if template.count(m + "(") == 1]


@pytest.mark.parametrize("filt", ["drop_think_lstrip_nl", "drop_think_strip_nl", "drop_think_trim",
                                  "lstrip_nl|drop_think_first_lstrip_nl"])
def test_no_unused_strip_macro(filt) -> None:
    """The exact strip macros are added for the strips the template writes, and only those
    (|drop_think_trim strips the answer after </think>; the others strip no whitespace)."""
    tgt = to_llamacpp(parse_spec(_CHATML.replace("{OUTPUT}", "{OUTPUT|" + filt + "}")), check_builtins=False)
    assert _unused_macros(tgt.chat_template) == []
    assert ("tmplc_strip(" in tgt.chat_template) == (filt == "drop_think_trim")
    for name, t in TARGETS.items():
        assert _unused_macros(t.chat_template) == [], name


def test_strip_macro_in_jinja2_too() -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    fmt = registry["llama-3"]
    tpl = env.from_string(TARGETS["llama-3"].chat_template)
    for content in ["\u3000 hi \xa0", "\x1c\x85x\u2029", "", " \u205f "]:
        msgs = [{"role": "user", "content": content}]
        assert tpl.render(messages=msgs, bos_token=fmt.meta.bos_token) == fmt.render(msgs)


def test_system_message_is_merged_for_formats_without_system_slot(driver) -> None:
    fmt, tgt = registry["gemma"], TARGETS["gemma"]
    assert tgt.add_bos_token and fmt.structure.system is None
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    only_system = [{"role": "system", "content": "Be brief."}]
    out = render([_job(fmt, tgt, msgs, True), _job(fmt, tgt, only_system, True),
                  {**_job(fmt, tgt, msgs, True), "workarounds": False}])
    assert out[0] == "<start_of_turn>user\nBe brief.\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert out[1] == "<start_of_turn>model\n"  # a lone system message is dropped
    assert isinstance(out[2], LlamaCppRenderError)  # the template itself refuses a system message
    with pytest.raises(MessageError):
        fmt.render(msgs)


def test_leading_bos_is_stripped_and_add_bos_token_follows_the_format(driver) -> None:
    assert TARGETS["llama-3"].add_bos_token is True
    assert TARGETS["llama-2"].add_bos_token is True  # BOS in the user prefix, leading for user-first chats
    assert TARGETS["chatml"].add_bos_token is False
    assert TARGETS["phi-3"].add_bos_token is False  # bos_token declared but not rendered
    fmt, tgt = registry["llama-3"], TARGETS["llama-3"]
    msgs = [{"role": "user", "content": "Hi"}]
    out, = render([_job(fmt, tgt, msgs, True)])
    assert out == "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    for name, t in TARGETS.items():
        assert t.gguf_metadata["tokenizer.ggml.add_bos_token"] is t.add_bos_token
        assert t.gguf_metadata["tokenizer.ggml.add_eos_token"] is False
        assert t.gguf_metadata["tokenizer.chat_template"] == t.chat_template


def test_add_bos_token_false_when_bos_is_not_leading() -> None:
    # BOS only in the assistant suffix: never leading -> add_bos_token false, BOS kept as text
    st_ = Structure(preamble=(), system=SystemBlock(placement="standalone", prefix=(Text("S:"),)), user=Turn(prefix=(Text("U:"),), suffix=(Text("\n"),)), assistant=Turn(prefix=(Text("A:"),), suffix=(SpecialToken("EOS"), SpecialToken("BOS"))))
    fmt = ChatFormat(st_, Metadata(name="x", bos_token="<s>", eos_token="</s>"))
    tgt = to_llamacpp(fmt, check_builtins=False)
    assert tgt.add_bos_token is False and tgt.requires_jinja and tgt.builtin_name is None


# --- the built-in path (no --jinja) -----------------------------------------------------------

def _builtin_domain(fmt: ChatFormat, tgt: LlamaCppTarget, msgs: list) -> bool:
    if fmt.structure.system is None and msgs and msgs[0]["role"] == "system":
        return False  # outside the format's domain (the reference refuses a system message)
    if any("\x00" in m["content"] for m in msgs):
        return False  # the built-ins take C strings: content is cut at U+0000 (documented)
    if not tgt.builtin_exact:  # the documented restriction: C-isspace trimming
        return all(m["content"].strip() == m["content"].strip(ASCII_SPACES) for m in msgs)
    return True


EXPECTED_BUILTINS = {
    "chatml": "chatml", "qwen3": "chatml", "yi": "chatml", "granite": "granite", "phi-3": "phi3",
    "phi-4": "phi4", "llama-3": "llama3", "llama-3.1": "llama3", "llama-3.2": "llama3",
    "gemma": "gemma", "gemma-2": "gemma",
    # with the {REPLY} lead its prompt ends with "[/INST]" exactly like the built-in
    "mistral-v7": "mistral-v7",
}


def test_builtin_claims(driver) -> None:
    claimed = {n: t.builtin_name for n, t in TARGETS.items() if t.builtin_name}
    assert claimed == EXPECTED_BUILTINS
    for name, t in TARGETS.items():
        assert t.requires_jinja == (t.builtin_name is None)
        if t.builtin_name:  # the claim is llama.cpp's own detection on the emitted template
            assert detect_builtin(t.chat_template) == t.builtin_name
    assert {n for n, t in TARGETS.items() if t.builtin_name and t.builtin_exact} == \
        {"chatml", "qwen3", "yi", "granite", "phi-3", "phi-4", "mistral-v7"}
    # detection picks a built-in that renders differently: no claim, a warning
    assert TARGETS["mistral-v1"].detected_builtin == "llama2" and TARGETS["mistral-v1"].builtin_name is None
    assert "llama2" in TARGETS["mistral-v1"].report()


@settings(max_examples=6)
@given(st.data())
def test_builtin_claims_render_like_reference(driver, data) -> None:
    convs = data.draw(st.lists(conversations(), min_size=10, max_size=10), label="conversations")
    cases, jobs = [], []
    for name, t in TARGETS.items():
        builtin = t.builtin_name or t.builtin_by_name
        if not builtin:
            continue
        fmt = registry[name]
        for c in convs:
            if not _builtin_domain(fmt, t, c):
                continue
            for agp in (False, True):
                cases.append((name, fmt, t, c, agp))
                jobs.append({"builtin": builtin, "messages": c, "add_generation_prompt": agp})
    results = run_driver_jobs(jobs)
    bad = [(n, c, agp, _expected(f, t, c, agp), r.get("output", r))
           for (n, f, t, c, agp), r in zip(cases, results) if r.get("output") != _expected(f, t, c, agp)]
    assert not bad, f"{len(bad)} of {len(cases)} differ; first: {bad[0]!r}"


def test_no_claim_without_engine(monkeypatch) -> None:
    def unavailable(*a, **k):
        raise LlamaCppUnavailableError("no compiler")

    monkeypatch.setattr(engine, "detect_builtin", unavailable)
    t = to_llamacpp(registry["chatml"])
    assert t.builtin_name is None and t.requires_jinja
    assert any("not checked" in n for n in t.notes)


# --- arguments, files, report -----------------------------------------------------------------

def _process_escapes(s: str) -> str:
    """A port of llama.cpp's common/common.cpp string_process_escapes (what -r goes through)."""
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            i += 1
            c = s[i]
            if c in "nrt'\"\\":
                out.append({"n": "\n", "r": "\r", "t": "\t"}.get(c, c))
            elif c == "x" and i + 2 < len(s) and all(h in "0123456789abcdefABCDEF" for h in s[i + 1:i + 3]):
                out.append(chr(int(s[i + 1:i + 3], 16)))
                i += 2
            else:
                out.append("\\" + c)
        else:
            out.append(s[i])
        i += 1
    return "".join(out)


@given(st.text())
def test_escape_arg_round_trips_through_llamacpp_escapes(s) -> None:
    assert _process_escapes(escape_arg(s)) == s


def test_args_and_files() -> None:
    t = TARGETS["llama-3"]
    assert t.server_args[:6] == ("llama-server", "-m", "model.gguf", "--jinja", "--chat-template-file",
                                 "llama.cpp/chat_template.jinja")
    assert t.cli_args[0] == "llama-cli" and "--jinja" in t.cli_args
    assert [t.server_args[i + 1] for i, a in enumerate(t.server_args) if a == "-r"] == ["<|eot_id|>", "<|end_of_text|>"]
    files = t.files()
    assert files["llama.cpp/chat_template.jinja"] == t.chat_template
    assert "llama-server" in files["llama.cpp/args.txt"] and "--chat-template llama3" in files["llama.cpp/args.txt"]
    assert t.special_tokens == {"tokenizer.ggml.bos_token_id": "<|begin_of_text|>",
                                "tokenizer.ggml.eos_token_id": "<|end_of_text|>",
                                "tokenizer.ggml.eot_token_id": "<|eot_id|>"}


def test_report() -> None:
    r = TARGETS["chatml"].report()
    assert "built-in template: chatml" in r and "llama-server -m model.gguf --jinja" in r
    assert "tokenizer.ggml.add_bos_token = false" in r
    r = TARGETS["alpaca"].report()
    assert "requires --jinja" in r


def test_non_ascii_spaces_constant() -> None:
    every = "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert sorted(ASCII_SPACES + NON_ASCII_SPACES) == sorted(every)
    assert ("\x00" + every + "\x00").strip() == "\x00" + every + "\x00"


def test_template_file_with_trailing_newline_renders_the_same(driver) -> None:
    fmt, tgt = registry["llama-3"], TARGETS["llama-3"]
    msgs = [{"role": "user", "content": " hi "}]
    a, b = render([_job(fmt, tgt, msgs, True), {**_job(fmt, tgt, msgs, True), "template": tgt.chat_template + "\n"}])
    assert a == b == expected_llamacpp(fmt, msgs, True, True)


def test_shared_wrapper_keeps_line_separators(driver) -> None:
    assert not _wrapper_splits_on_line_separators()


# --- |lstrip / |rstrip, {SYSTEM|nonempty}, {PROMPT=...}, |drop_think ------------------------------

def _fmt(name: str, *, system: SystemBlock | None = None, user: Turn | None = None,
         assistant: Turn | None = None, preamble=()) -> ChatFormat:
    return ChatFormat(Structure(preamble=tuple(preamble), system=system, user=user or Turn(prefix=(Text("U:"),), suffix=(Text("\n"),)), assistant=assistant or Turn(prefix=(Text("A:"),), suffix=(Text("\n"),))),
                      Metadata(name=name, bos_token="<s>", eos_token="</s>"))


_SIDES = ("both", "left", "right")
# Unicode whitespace that llama.cpp's |trim/.lstrip()/.rstrip() (C isspace over bytes) keep
_EDGE_CONTENTS = ["\u3000hi\u3000", "\xa0x\xa0", " \u3000 a b \xa0\n", "\n\u2028\x85y\u2029\x1c", "\u3000",
                  "\xa0 \u3000", "", "  ", "é\u3000", "\u3000日本", "🙂\xa0", "a\u3000b", "\u205f\u2003z\u200a "]


def test_lstrip_rstrip_are_exact_with_unicode_whitespace(driver) -> None:
    cases = []
    for side in _SIDES:
        for where in ("system", "user", "assistant"):
            sb = SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(Text("\n"),))
            user = Turn(prefix=(Text("U:"),), suffix=(Text("\n"),))
            asst = Turn(prefix=(Text("A:"),), suffix=(Text("\n"),))
            if where == "system":
                sb = SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(Text("\n"),), trim=True, default=None, trim_side=side)
            elif where == "user":
                user = Turn(prefix=(Text("U:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side=side))
            else:
                asst = Turn(prefix=(Text("A:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side=side))
            fmt = _fmt(f"{where}-{side}", system=sb, user=user, assistant=asst)
            tgt = to_llamacpp(fmt, check_builtins=False)
            macro = {"both": "tmplc_strip(", "left": "tmplc_lstrip(", "right": "tmplc_rstrip("}[side]
            assert macro in tgt.chat_template
            for expr in ("messages[0]['content']", "message['content']"):  # llama.cpp's strips are ASCII-only
                assert f"{expr} | trim" not in tgt.chat_template
                assert f"({expr}).lstrip()" not in tgt.chat_template
                assert f"({expr}).rstrip()" not in tgt.chat_template
            for i, c in enumerate(_EDGE_CONTENTS):
                other = _EDGE_CONTENTS[(i + 5) % len(_EDGE_CONTENTS)]
                msgs = [{"role": "system", "content": c}, {"role": "user", "content": other},
                        {"role": "assistant", "content": c}, {"role": "user", "content": c}]
                cases.append((fmt.name, fmt, tgt, msgs, i % 2 == 0))
    # the expected values really differ from ASCII-only stripping
    assert _fmt("l", user=Turn(prefix=(Text("U:"),), suffix=(), rule=ContentRule(trim=True, trim_side="left"))).render(
        [{"role": "user", "content": "\u3000\xa0x\u3000"}]) == "U:x\u3000"
    assert _fmt("r", user=Turn(prefix=(Text("U:"),), suffix=(), rule=ContentRule(trim=True, trim_side="right"))).render(
        [{"role": "user", "content": "\u3000x\xa0 \u3000"}]) == "U:\u3000x"
    _check_batch(cases)


def test_side_macros_render_the_same_in_jinja2() -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    for side in _SIDES:
        fmt = _fmt(side, system=SystemBlock(placement="first_user", prefix=(Text("<<S>>"),), suffix=(Text("|"),), trim=True, default=None, trim_side=side),
                   user=Turn(prefix=(Text("U:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side=side)),
                   assistant=Turn(prefix=(Text("A:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side=side)))
        tpl = env.from_string(to_llamacpp(fmt, check_builtins=False).chat_template)
        for c in _EDGE_CONTENTS:
            msgs = [{"role": "system", "content": c}, {"role": "user", "content": c},
                    {"role": "assistant", "content": c}]
            assert tpl.render(messages=msgs, bos_token="<s>", eos_token="</s>") == fmt.render(msgs), (side, c)


_SYSTEM_CONVS = [
    [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
     {"role": "user", "content": "Q2"}],
    [{"role": "system", "content": ""}, {"role": "assistant", "content": "A"}, {"role": "user", "content": "Q"}],
    [{"role": "system", "content": ""}],
    [{"role": "system", "content": " "}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "\u3000"}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Sys"}, {"role": "assistant", "content": "A"}],
    [{"role": "system", "content": "Sys"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "A"}],
    [{"role": "assistant", "content": "A"}],
    [],
]


def test_skip_empty_system_renders_like_reference(driver) -> None:
    cases = []
    for placement in ("standalone", "first_user"):
        for default in (None, "Default sys"):
            for skip in (True, False):
                for trim in (False, True):
                    sb = SystemBlock(placement=placement, prefix=(Text("<<S>>"),), suffix=(Text("<</S>>"),), trim=trim, default=default, trim_side="both", skip_empty=skip)
                    fmt = _fmt(f"{placement}-{default}-{skip}-{trim}", system=sb, preamble=[Text("P|")])
                    tgt = to_llamacpp(fmt, check_builtins=False)
                    for msgs in _SYSTEM_CONVS:
                        for agp in (False, True):
                            cases.append((fmt.name, fmt, tgt, msgs, agp))
    # what the reference means: an empty system message is no system message (or the default)
    fmt = _fmt("x", system=SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(Text("\n"),), trim=False, default="D", trim_side="both", skip_empty=True))
    assert fmt.render(_SYSTEM_CONVS[0]) == "S:D\nU:Hi\n"
    assert fmt.render(_SYSTEM_CONVS[4]) == "S: \nU:Hi\n"
    _check_batch(cases)


def test_prompt_only_renders_like_reference(driver) -> None:
    cases = []
    for lead in ((), (Text(" "),), (Text("\n"), SpecialToken("EOS"))):
        for prompt in ("<think>\n", " ", "\n\n", "<think>"):
            asst = Turn(prefix=(Text("<|assistant|>"),), suffix=(SpecialToken("EOS"),), lead=lead, prompt_only=prompt, rule=ContentRule(trim=False))
            fmt = _fmt(f"lead{lead!r}-{prompt!r}", assistant=asst,
                       system=SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(Text("\n"),)))
            tgt = to_llamacpp(fmt, check_builtins=False)
            for msgs in _SYSTEM_CONVS:
                for agp in (False, True):
                    cases.append((fmt.name, fmt, tgt, msgs, agp))
    fmt = _fmt("r1", assistant=Turn(prefix=(Text("A:"),), suffix=(Text("\n"),), lead=(Text(" "),), prompt_only="<think>\n", rule=ContentRule(trim=False)))
    assert fmt.render([{"role": "user", "content": "q"}], add_generation_prompt=True) == "U:q\nA:<think>\n"
    assert fmt.render([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "U:q\nA: a\n"
    _check_batch(cases)


_THINK_CONTENTS = ["<think>\nhm\n</think>\n\nA", "a</think>b</think> c\u3000", "</think>", "no think", "",
                   "\u3000</think>\xa0x", "\n\n<think>\n\u3000r\xa0\n</think>\n\n\u3000a\n", "\n\nx\n",
                   "</think>\n\n</think>\n", " \n<think>\n\n</think>\n \n"]


def test_drop_think_renders_like_reference(driver) -> None:
    """Every |drop_think mode, with |lstrip_nl, each trim side and |trim_first: contents with
    Unicode whitespace around </think> (the strips are the exact macros)."""
    cases = []
    for mode in DROP_THINK[1:]:
        for trim, side in ((False, "both"), (True, "both"), (True, "left"), (True, "right")):
            for lstrip_nl in (False, True):
                for first in (False, True):
                    asst = Turn(prefix=(Text("A:"),), suffix=(Text("\n"),), rule=ContentRule(trim=trim, trim_side=side, drop_think=mode, lstrip_nl=lstrip_nl, trim_first=first))
                    fmt = _fmt(f"{mode}-{trim}-{side}-{lstrip_nl}-{first}", assistant=asst)
                    tgt = to_llamacpp(fmt, check_builtins=False)
                    for i, c in enumerate(_THINK_CONTENTS):
                        other = _THINK_CONTENTS[(i + 3) % len(_THINK_CONTENTS)]
                        cases.append((fmt.name, fmt, tgt, [{"role": "user", "content": c},
                                                           {"role": "assistant", "content": c},
                                                           {"role": "user", "content": c},
                                                           {"role": "assistant", "content": other}], False))
    _check_batch(cases)


_FINALS = [
    FinalAnswer(),
    FinalAnswer(trim=True, trim_side="right"),
    FinalAnswer(drop_think="last", lstrip_nl=True, think=ThinkBlock("<think>\n", "\n</think>\n\n", always=True)),
    FinalAnswer(drop_think="last_trim", think=ThinkBlock("<t>", "</t>", trim=True)),
    FinalAnswer(drop_think="first", lstrip_nl=False, trim=True, trim_side="both", think=ThinkBlock("[", "]\n", True, True), trim_first=True),
    FinalAnswer(drop_think="last_strip_nl", lstrip_nl=True, trim=True, trim_side="left", think=ThinkBlock("", "\n"), trim_first=True),
]


@pytest.mark.parametrize("final", _FINALS)
def test_final_answer_rule_renders_like_reference(driver, final) -> None:
    """The final answer's own rule and reasoning block ({REASONING|trim}: the exact strip macro)
    against the earlier answers' rule, with and without the generation prompt."""
    cases = []
    for drop in ("", "last_lstrip_nl", "first"):
        asst = Turn(prefix=(Text("<|assistant|>"),), suffix=(SpecialToken("EOS"),), final=final, rule=ContentRule(drop_think=drop))
        if asst.final is None:  # (FinalAnswer() is the rule of a turn without drop: no rule of its own)
            assert final == FinalAnswer() and not drop
            continue
        fmt = _fmt(f"{drop}-{final}", assistant=asst, system=SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(Text("\n"),)))
        tgt = to_llamacpp(fmt, check_builtins=False)
        if final.think is not None and final.think.trim:
            assert "tmplc_strip(tmplc_reasoning)" in tgt.chat_template  # not |trim: ASCII-only in llama.cpp
        for i, c in enumerate(_THINK_CONTENTS):
            other = _THINK_CONTENTS[(i + 4) % len(_THINK_CONTENTS)]
            for msgs in ([{"role": "user", "content": "q"}, {"role": "assistant", "content": c}],
                         [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                          {"role": "assistant", "content": other}, {"role": "user", "content": "q2"},
                          {"role": "assistant", "content": c}],
                         [{"role": "user", "content": "q"}, {"role": "assistant", "content": c},
                          {"role": "user", "content": other}]):
                for agp in (False, True):
                    cases.append((fmt.name, fmt, tgt, msgs, agp))
    # what the reference means: the final answer re-wrapped, the earlier one without its reasoning
    fmt = _fmt("q", assistant=Turn(prefix=(Text("A:"),), suffix=(Text("\n"),), final=_FINALS[3], rule=ContentRule(drop_think="last")))
    assert fmt.render([{"role": "user", "content": "q"}, {"role": "assistant", "content": "\u3000r </think> a "},
                       {"role": "user", "content": "q"}, {"role": "assistant", "content": "\u3000r </think> a "}]) == \
        "U:q\nA: a \nU:q\nA:<t>r</t>a\n"
    _check_batch(cases)


_CHATML = "<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n" \
          "{OUTPUT}<|im_end|>\n<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT}<|im_end|>\n"


# PROBE_CONVERSATIONS (targets/llamacpp.py) hold answers starting with "\n", a final answer with
# edge whitespace and one with reasoning, so no built-in is claimed for rules it renders differently

@pytest.mark.parametrize("change", [
    ("{SYSTEM}", "{SYSTEM|nonempty}"),
    ("{INPUT}", "{INPUT|lstrip}"),
    ("{INPUT}", "{INPUT|rstrip}"),
    ("{OUTPUT}", "{OUTPUT|rstrip}"),
    ("{OUTPUT}", "{PROMPT=<think>\n}{OUTPUT}"),
    ("{OUTPUT}", "{OUTPUT|drop_think}"),
    ("{OUTPUT}", "{OUTPUT|drop_think_lstrip_nl}"),
    ("{OUTPUT}", "{OUTPUT|lstrip_nl}"),
    # the final answer's own rule (the second {OUTPUT} only)
    ("{OUTPUT}", "{OUTPUT|trim}", "final"),
    ("{OUTPUT}", "{THINK}<think>{REASONING}</think>{/THINK}{OUTPUT}", "final"),
])
def test_new_features_get_no_builtin_that_renders_differently(driver, change) -> None:
    plain = to_llamacpp(parse_spec(_CHATML))
    assert plain.builtin_name == "chatml"
    old, new = change[:2]
    spec = _CHATML.replace(old, new) if len(change) == 2 else new.join(_CHATML.rsplit(old, 1))
    assert (parse_spec(spec).structure.assistant.final is not None) == (len(change) == 3)
    tgt = to_llamacpp(parse_spec(spec))
    # llama.cpp would detect chatml from the template, but its built-in does not render the format
    assert tgt.detected_builtin == "chatml"
    assert tgt.builtin_name is None and tgt.builtin_by_name is None and tgt.requires_jinja
    assert "warning" in tgt.report()


@pytest.mark.parametrize("output, final, answer", [
    ("{OUTPUT|lstrip_nl}", "{OUTPUT|lstrip_nl}", "\n\nx"),
    ("{OUTPUT}", "{OUTPUT|trim}", " x "),
    ("{OUTPUT}", "{THINK}<think>{REASONING}</think>{/THINK}{OUTPUT}", "r</think>x"),
    ("{OUTPUT|drop_think}", "{OUTPUT}", "r</think>x"),
])
def test_claimed_builtin_renders_answer_rules(driver, output, final, answer) -> None:
    """A built-in that the target names (builtin_name, or builtin_by_name) renders the answer rules
    like the reference: here, a final answer that the rule changes."""
    fmt = parse_spec(final.join(_CHATML.replace("{OUTPUT}", output).rsplit(output, 1)))
    tgt = to_llamacpp(fmt)
    builtin = tgt.builtin_name or tgt.builtin_by_name
    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}] * 2
    assert fmt.render(msgs) != _CHATML_REF.render(msgs)  # the rule changes this conversation
    if builtin is None:
        return
    (got,) = run_driver_jobs([{"builtin": builtin, "messages": msgs, "add_generation_prompt": False}])
    want = _expected(fmt, tgt, msgs, False)
    assert got.get("output") == want


_CHATML_REF = parse_spec(_CHATML)


def test_builtin_that_trims_the_system_message_is_not_claimed_for_nonempty(driver) -> None:
    # gemma's built-in merges a system message into the first user turn, C-trimmed, and skips it
    # when that is empty: identical for "" but not for a whitespace-only system message
    turn = "<start_of_turn>user\n{INPUT|trim}<end_of_turn>\n<start_of_turn>model\n{OUTPUT|trim}<end_of_turn>\n"
    spec = "{BOS}" + turn.replace("{INPUT|trim}", "{SYSTEM|nonempty|trim}\n\n{INPUT|trim}") + turn
    fmt = parse_spec(spec).with_meta(bos_token="<bos>", eos_token="<eos>")
    tgt = to_llamacpp(fmt)
    assert tgt.detected_builtin == "gemma" and tgt.builtin_name is None and tgt.builtin_by_name is None
    msgs = [{"role": "system", "content": " \n"}, {"role": "user", "content": "Hi"}]
    (r,) = run_driver_jobs([{"builtin": "gemma", "messages": msgs, "add_generation_prompt": False}])
    assert r["output"] != expected_llamacpp(fmt, msgs, False, tgt.add_bos_token)


def test_builtins_that_render_the_new_features_are_found(driver) -> None:
    # Orion's built-in skips an empty system message (|nonempty); bailing-think's generation
    # prompt ends with <think> ({PROMPT=<think>}).  Neither is detected from a tmplc template,
    # but each matches when named explicitly.
    orion_sys = SystemBlock(placement="first_user", prefix=(), suffix=(Text("\n\n"),), skip_empty=True)
    orion = _fmt("orion", system=orion_sys, user=Turn(prefix=(Text("Human: "),), suffix=(Text("\n\nAssistant: </s>"),)),
                 assistant=Turn(prefix=(), suffix=(Text("</s>"),)))
    bailing = _fmt("bailing", system=SystemBlock(placement="standalone", prefix=(Text("<role>SYSTEM</role>"),)),
                   user=Turn(prefix=(Text("<role>HUMAN</role>"),)),
                   assistant=Turn(prefix=(Text("<role>ASSISTANT</role>"),), prompt_only="<think>"))
    assert to_llamacpp(orion).builtin_by_name == "orion"
    assert to_llamacpp(bailing).builtin_by_name == "bailing-think"
    # ... and without the feature, not (orion renders an empty system message's "\n\n"; bailing
    # without <think> is the plain "bailing" built-in)
    assert to_llamacpp(replace(orion, structure=replace(orion.structure, system=replace(
        orion_sys, skip_empty=False)))).builtin_by_name is None
    assert to_llamacpp(replace(bailing, structure=replace(bailing.structure, assistant=Turn(prefix=(Text("<role>ASSISTANT</role>"),))))).builtin_by_name == "bailing"
    jobs, want = [], []
    for fmt, name in ((orion, "orion"), (bailing, "bailing-think")):
        for msgs in _SYSTEM_CONVS:
            if msgs and msgs[0]["content"] not in ("", "Sys") or (msgs and msgs[-1]["role"] == "system"):
                continue
            for agp in (False, True):
                try:
                    exp = fmt.render(msgs, add_generation_prompt=agp)
                except MessageError:
                    continue
                jobs.append({"builtin": name, "messages": msgs, "add_generation_prompt": agp})
                want.append(exp)
    assert [r.get("output") for r in run_driver_jobs(jobs)] == want


# --- {DATE=...}: strftime_now ---------------------------------------------------------------

DATE_SPECS = ["{DATE=%d %b %Y}", "{DATE=%Y-%m-%d}", "{DATE=%B %d, %Y}", "{DATE=%A}", "Today is {DATE=%A, %-d %B %Y}.\n",
              "{DATE=%x %a %e %j %U %W %V %G %g %C %y %u %w %h %D %F %%}"]
DATE_DAYS = [DAY, datetime.date(1999, 12, 31), datetime.date(2021, 1, 3), datetime.date(2030, 7, 4)]
_DATE_CONVS = [[{"role": "user", "content": "q"}],
               [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
                {"role": "assistant", "content": "r"}, {"role": "user", "content": "q2"}]]


def _dated_chatml(date_spec: str, where: str) -> ChatFormat:
    p = dict.fromkeys(("preamble", "system", "user", "assistant"), "")
    p[where] = date_spec
    turn = ("<|im_start|>user\n" + p["user"] + "{INPUT}<|im_end|>\n<|im_start|>assistant\n" + p["assistant"]
            + "{OUTPUT}<|im_end|>\n")
    spec = (("{BOS}" + date_spec + "{SPLIT}" if where == "preamble" else "")
            + "<|im_start|>system\n" + p["system"] + "{SYSTEM}<|im_end|>\n" + turn + turn)
    # the spec language accepts date conversions only: other formats are set in the IR
    formats = re.findall(r"\{DATE=([^{}]*)\}", spec)
    fmt = parse_spec(re.sub(r"\{DATE=[^{}]*\}", "{DATE=%Y}", spec)).with_meta(
        name="dated", bos_token="<s>", eos_token="<|im_end|>")
    if formats:
        fmt = with_date_format(fmt, formats[0])
    assert fmt.structure.dated
    return fmt


def test_common_date_formats_render_like_reference(driver) -> None:
    """strftime_now in llama.cpp's engine, on fixed days (the driver's test hook), wherever the
    date is: the reference's date.strftime, byte for byte."""
    cases = []
    for spec in DATE_SPECS:
        for where in ("preamble", "system", "user", "assistant"):
            fmt = _dated_chatml(spec, where)
            tgt = to_llamacpp(fmt, check_builtins=False)
            assert "strftime_now(" in tgt.chat_template
            for day in DATE_DAYS:
                for c in _DATE_CONVS:
                    for agp in (False, True):
                        cases.append((f"{spec} in {where}", fmt, tgt, c, agp, day))
    _check_batch(cases)


def test_date_without_the_hook_is_today(driver) -> None:
    fmt = _dated_chatml("{DATE=%d %b %Y}", "system")
    tgt = to_llamacpp(fmt, check_builtins=False)
    job = dict(_job(fmt, tgt, _DATE_CONVS[1], True))
    del job["date"]
    before = datetime.date.today()
    (got,) = render([job])
    assert got in {_expected(fmt, tgt, _DATE_CONVS[1], True, d) for d in (before, datetime.date.today())}


def test_every_accepted_conversion_agrees_with_python(driver) -> None:
    """Each conversion of DATE_DIRECTIVES, bare and with each glibc flag, on days of every month
    and weekday: C strftime (llama.cpp, "C" locale) == Python's date.strftime."""
    days = [datetime.date(2024, 1, 1) + datetime.timedelta(k * 41) for k in range(18)] + DATE_DAYS
    tpl = "{{ strftime_now(messages[0]['content']) }}"
    jobs, want = [], []
    for c in DATE_DIRECTIVES:
        for flag in ("", "-", "_", "0", "^", "#"):
            for day in days:
                jobs.append({"template": tpl, "messages": [{"role": "user", "content": "%" + flag + c}],
                             "date": day})
                want.append(day.strftime("%" + flag + c))
    got = render(jobs)
    bad = [(j["messages"][0]["content"], j["date"], g, w) for j, g, w in zip(jobs, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(jobs)} differ; first: {bad[0]!r}"


@pytest.mark.parametrize("fmt_,why", [
    ("%H:%M", "%H, %M"), ("%d %b %Y %p", "%p"), ("%c", "%c"), ("%z", "%z"), ("%Z", "%Z"), ("%s", "%s"),
    ("%Y-%m-%d %", "incomplete"), ("%Y " + "x" * 120, "99"),
])
def test_date_formats_llamacpp_cannot_render_exactly_are_refused(fmt_, why) -> None:
    fmt = _dated_chatml("{DATE=" + fmt_ + "}", "system")
    with pytest.raises(TargetError) as e:
        to_llamacpp(fmt)
    assert "{DATE=" + fmt_ + "}" in str(e.value) and why in str(e.value)


def test_dated_formats_never_claim_a_builtin(driver) -> None:
    """No built-in renders a date: chatml is what llama.cpp detects, but it is not claimed (by
    detection or by name) for a format that shows the date, whatever today is."""
    for where in ("preamble", "system", "user", "assistant"):
        for spec in ("{DATE=%Y-%m-%d}", "{DATE=%d %b %Y}\n"):
            tgt = to_llamacpp(_dated_chatml(spec, where))
            assert tgt.builtin_name is None and tgt.builtin_by_name is None and tgt.requires_jinja, (spec, where)
            assert tgt.detected_builtin == "chatml" and "warning" in tgt.report()
            assert any("strftime_now" in n for n in tgt.notes)


def test_a_date_that_renders_no_date_keeps_the_builtin(driver) -> None:
    """{DATE=%n} renders "\\n" on every day: ChatML written with it is still ChatML, and the
    built-in is claimed, because it really renders identically (checked on different days)."""
    fmt = parse_spec("<|im_start|>system{DATE=%n}{SYSTEM}<|im_end|>\n" + _CHATML.split("<|im_end|>\n", 1)[1])
    assert fmt.structure.dated
    assert to_llamacpp(fmt).builtin_name == "chatml"


def test_locale_note_for_names(driver) -> None:
    named = to_llamacpp(_dated_chatml("{DATE=%d %b %Y}", "system"), check_builtins=False)
    numeric = to_llamacpp(_dated_chatml("{DATE=%Y-%m-%d}", "system"), check_builtins=False)
    assert any("LC_ALL=C" in n for n in named.notes) and not any("LC_ALL=C" in n for n in numeric.notes)
