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

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import chat_formats, conversations
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
from tmplc.errors import MessageError
from tmplc.ir import ChatFormat, Metadata, SpecialToken, Structure, SystemBlock, Text, Turn
from tmplc.registry import registry
from tmplc.targets.jinja import to_jinja
from tmplc.targets.llamacpp import (
    ASCII_SPACES,
    NON_ASCII_SPACES,
    LlamaCppTarget,
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


def _job(fmt: ChatFormat, target: LlamaCppTarget, messages, agp: bool) -> dict:
    return {"template": target.chat_template, "messages": messages, "bos_token": fmt.meta.bos_token or "",
            "eos_token": fmt.meta.eos_token or "", "add_generation_prompt": agp, "add_bos": target.add_bos_token}


def _expected(fmt: ChatFormat, target: LlamaCppTarget, messages, agp: bool) -> str | None:
    try:
        return expected_llamacpp(fmt, messages, agp, target.add_bos_token)
    except MessageError:
        return None


def _check_batch(cases: list[tuple[str, ChatFormat, LlamaCppTarget, list, bool]]) -> None:
    jobs = [_job(fmt, tgt, msgs, agp) for (_, fmt, tgt, msgs, agp) in cases]
    results = render(jobs)
    failures = []
    for (name, fmt, tgt, msgs, agp), got in zip(cases, results):
        exp = _expected(fmt, tgt, msgs, agp)
        if exp is None:  # the reference refuses: llama.cpp must raise too (raise_exception)
            if not isinstance(got, LlamaCppRenderError):
                failures.append((name, msgs, agp, "reference refuses", got))
        elif got != exp:
            failures.append((name, msgs, agp, exp, got))
        elif tgt.add_bos_token and msgs and msgs[0]["role"] != "assistant":
            # the BOS token comes back from the tokenizer: the reference starts with it
            ref = fmt.render(expected_input(fmt, msgs), add_generation_prompt=agp)
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
    _check_batch(cases)


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
    st_ = Structure((), SystemBlock("standalone", (Text("S:"),)), Turn((Text("U:"),), (Text("\n"),)),
                    Turn((Text("A:"),), (SpecialToken("EOS"), SpecialToken("BOS"))))
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
