"""The spec language: structure recovery on the forms the issue names, and every error kind."""

from __future__ import annotations

import pytest

import tmplc
from tmplc import SpecError
from tmplc.ir import ContentRule, SpecialToken, Text

import answer_rules

BOS = SpecialToken("BOS")
EOS = SpecialToken("EOS")

LLAMA3 = (
    "{BOS}<|start_header_id|>system<|end_header_id|>\n\n{SYSTEM}<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{INPUT}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{OUTPUT}<|eot_id|>"
    "<|start_header_id|>user<|end_header_id|>\n\n{INPUT}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{OUTPUT}<|eot_id|>"
)
ALPACA = (
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.\n\n### Instruction:\n{INPUT}\n\n### Response:\n{OUTPUT}{EOS}\n\n"
    "### Instruction:\n{INPUT}\n\n### Response:\n{OUTPUT}{EOS}\n\n"
)
LLAMA2 = (
    "{BOS}[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\n{INPUT} [/INST]{SPLIT} {OUTPUT} {EOS}"
    "{BOS}[INST] {INPUT} [/INST]{SPLIT} {OUTPUT} {EOS}"
)
CHATML_DEFAULT = (
    "<|im_start|>system\n{SYSTEM=You are a helpful assistant.}<|im_end|>\n"
    "<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT}<|im_end|>\n"
    "<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT}<|im_end|>\n"
)
MISTRAL_V1 = "{BOS}[INST] {SYSTEM}\n\n{INPUT} [/INST]{SPLIT}{OUTPUT}{EOS}[INST] {INPUT} [/INST]{SPLIT}{OUTPUT}{EOS}"


def msgs(*pairs, system=None):
    out = [{"role": "system", "content": system}] if system is not None else []
    for u, a in pairs:
        out.append({"role": "user", "content": u})
        if a is not None:
            out.append({"role": "assistant", "content": a})
    return out


def test_llama3_standalone_system_omitted_when_absent():
    f = tmplc.parse_spec(LLAMA3, bos_token="<|begin_of_text|>")
    st = f.structure
    assert st.preamble == (BOS,)
    assert st.system.placement == "standalone"
    assert st.system.prefix == (Text("<|start_header_id|>system<|end_header_id|>\n\n"),)
    assert st.system.suffix == (Text("<|eot_id|>"),)
    assert st.user.suffix == (Text("<|eot_id|>"),)  # rule b: ends like the assistant turn
    assert st.assistant.prefix == (Text("<|start_header_id|>assistant<|end_header_id|>\n\n"),)
    assert f.render(msgs(("hi", "yo"))) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nyo<|eot_id|>")
    assert f.render(msgs(("hi", None), system="S"), add_generation_prompt=True) == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_alpaca_fixed_preamble_and_line_break_rule():
    f = tmplc.parse_spec(ALPACA, eos_token="</s>")
    st = f.structure
    assert st.system is None
    assert st.preamble[0].value.startswith("Below is an instruction")
    assert st.preamble == (Text("Below is an instruction that describes a task. Write a response that "
                                "appropriately completes the request.\n\n"),)
    assert st.user.prefix == (Text("### Instruction:\n"),)
    assert st.user.suffix == (Text("\n\n"),)  # rule c: first line-break run with text after it
    assert st.assistant.prefix == (Text("### Response:\n"),)
    assert st.assistant.suffix == (EOS, Text("\n\n"))
    assert f.render(msgs(("a", "b"))).endswith("### Instruction:\na\n\n### Response:\nb</s>\n\n")
    with pytest.raises(tmplc.MessageError) as e:
        f.render(msgs(("a", "b"), system="x"))
    assert e.value.index == 0


def test_default_system_rendered_when_conversation_has_none():
    f = tmplc.parse_spec(CHATML_DEFAULT)
    assert f.structure.system.default == "You are a helpful assistant."
    assert f.render(msgs(("hi", None)), add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n")
    assert f.render(msgs(("hi", None), system="Be terse.")).startswith("<|im_start|>system\nBe terse.<|im_end|>\n")
    # ChatML's user suffix keeps its newline; the generation prompt is exactly the assistant header
    assert f.structure.user.suffix == (Text("<|im_end|>\n"),)
    assert f.structure.assistant.prefix == (Text("<|im_start|>assistant\n"),)


def test_llama2_system_inside_first_user_turn():
    f = tmplc.parse_spec(LLAMA2, bos_token="<s>", eos_token="</s>")
    st = f.structure
    assert st.system.placement == "first_user"
    assert st.preamble == ()
    assert st.user.prefix == (BOS, Text("[INST] "))
    assert st.system.prefix == (Text("<<SYS>>\n"),)
    assert st.system.suffix == (Text("\n<</SYS>>\n\n"),)
    assert st.user.suffix == (Text(" [/INST]"),)
    assert st.assistant.prefix == (Text(" "),)
    assert f.render(msgs(("q1", "a1"), ("q2", "a2"), system="S")) == (
        "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nq1 [/INST] a1 </s><s>[INST] q2 [/INST] a2 </s>")
    assert f.render(msgs(("q1", "a1"))) == "<s>[INST] q1 [/INST] a1 </s>"


def test_mistral_v1_system_inside_first_turn_and_bos_at_start():
    f = tmplc.parse_spec(MISTRAL_V1, bos_token="<s>", eos_token="</s>")
    st = f.structure
    assert st.preamble == (BOS,)
    assert st.system.placement == "first_user"
    assert st.system.prefix == () and st.system.suffix == (Text("\n\n"),)
    assert f.render(msgs(("q", "a"), ("q2", None), system="S")) == "<s>[INST] S\n\nq [/INST]a</s>[INST] q2 [/INST]"


def test_end_of_turn_after_user_content_optional():
    spec = "<u>{INPUT}<eot>\n<a>{OUTPUT}<eot>\n<u>{INPUT}<eot>\n<a>{OUTPUT}<eot>\n"
    st = tmplc.parse_spec(spec).structure
    assert st.user.suffix == (Text("<eot>\n"),) and st.assistant.prefix == (Text("<a>"),)
    spec2 = "<u>{INPUT}\n<a>{OUTPUT}<eot>\n<u>{INPUT}\n<a>{OUTPUT}<eot>\n"
    st2 = tmplc.parse_spec(spec2).structure
    assert st2.user.suffix == (Text("\n"),) and st2.assistant.suffix == (Text("<eot>\n"),)


def test_explicit_split_overrides_default_rule():
    a = tmplc.parse_spec("Q: {INPUT}\nA: {OUTPUT}\nQ: {INPUT}\nA: {OUTPUT}\n").structure
    assert (a.user.suffix, a.assistant.prefix) == ((Text("\n"),), (Text("A: "),))
    b = tmplc.parse_spec("Q: {INPUT}\n{SPLIT}A: {OUTPUT}\nQ: {INPUT}\n{SPLIT}A: {OUTPUT}\n").structure
    assert b == a
    c = tmplc.parse_spec("Q: {INPUT}{SPLIT}\nA: {OUTPUT}\nQ: {INPUT}{SPLIT}\nA: {OUTPUT}\n").structure
    assert (c.user.suffix, c.assistant.prefix) == ((), (Text("\nA: "),))


GLM = ("[gMASK]<sop>{SPLIT}<|system|>\n{SYSTEM}<|user|>\n{INPUT}{SPLIT}<|assistant|>\n{OUTPUT}"
       "<|user|>\n{INPUT}{SPLIT}<|assistant|>\n{OUTPUT}")


def test_split_before_system_marks_a_fixed_preamble():
    f = tmplc.parse_spec(GLM)
    st = f.structure
    assert st.preamble == (Text("[gMASK]<sop>"),)
    assert st.system.placement == "standalone" and st.system.prefix == (Text("<|system|>\n"),)
    # the preamble is always rendered; the system block only with a system message
    assert f.render(msgs(("hi", "yo"))) == "[gMASK]<sop><|user|>\nhi<|assistant|>\nyo"
    assert f.render(msgs(("hi", "yo"), system="S")) == "[gMASK]<sop><|system|>\nS<|user|>\nhi<|assistant|>\nyo"
    # canonical spec writes it, and only when needed
    assert f.to_spec() == GLM
    assert "{SPLIT}{BOS}" not in tmplc.parse_spec(LLAMA3).to_spec()
    assert tmplc.parse_spec(LLAMA3).to_spec() == LLAMA3


def test_split_before_system_is_exact_about_bos():
    with_bos = tmplc.parse_spec("{BOS}{SPLIT}" + LLAMA3[5:]).structure
    assert with_bos == tmplc.parse_spec(LLAMA3).structure  # redundant but allowed
    no_bos = tmplc.parse_spec("{SPLIT}" + LLAMA3).structure
    assert no_bos.preamble == () and no_bos.system.prefix[0] == BOS  # BOS only with a system message
    assert tmplc.ChatFormat(no_bos).to_spec() == "{SPLIT}" + LLAMA3


def test_split_before_system_decides_the_ambiguous_placement():
    spec = "U:{SYSTEM}\nU:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n"
    with pytest.raises(SpecError, match="put {SPLIT}"):
        tmplc.parse_spec(spec)
    st = tmplc.parse_spec("{SPLIT}" + spec).structure
    assert st.preamble == () and st.system.placement == "standalone"
    assert st.system.prefix == (Text("U:"),) and st.system.suffix == (Text("\n"),)
    assert tmplc.ChatFormat(st).to_spec() == "{SPLIT}" + spec


def test_brace_escapes_and_special_token_text_are_literal():
    f = tmplc.parse_spec("{{U}} {INPUT}\n<|a|>{OUTPUT}</s>\n{{U}} {INPUT}\n<|a|>{OUTPUT}</s>\n")
    assert f.structure.user.prefix == (Text("{U} "),)
    assert f.render(msgs(("x", "y"))) == "{U} x\n<|a|>y</s>\n"


def test_trim_filter():
    f = tmplc.parse_spec("U:{INPUT|trim}\nA:{OUTPUT}\nU:{INPUT|trim}\nA:{OUTPUT}\n")
    assert f.structure.user.trim and not f.structure.assistant.trim
    assert f.render(msgs(("  x \n", " y "))) == "U:x\nA: y \n"


# --------------------------------------------------------------------------- errors
ERRORS = [
    # (spec, line, column, words in the message)
    ("", 1, 1, "empty spec"),
    ("U: {INPUT}\nA: {OUTPUT}\n", 2, 4, "only one exchange"),
    ("U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 5, 4, "exactly two"),
    ("U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nB: {OUTPUT}\n", 4, 1, "repetitions differ"),
    ("A: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\n", 1, 4, "{OUTPUT} before {INPUT}"),
    ("U: {INPUT}\nA: {ANSWER}\n", 2, 4, "unknown placeholder {ANSWER}"),
    ("U: {input}\nA: {OUTPUT}\n", 1, 4, "upper case"),
    ("U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n\n", 5, 1, "end of the file"),
    ("[INST] {INPUT} [/INST]{OUTPUT}</s>[INST] {INPUT} [/INST]{OUTPUT}</s>", 1, 49, "{SPLIT}"),
    ("> {INPUT}\n> {OUTPUT}\n> {INPUT}\n> {OUTPUT}\n", 3, 3, "identically"),
    ("U: { INPUT}\nA: {OUTPUT}\n", 1, 4, "write '{{'"),
    ("U: {INPUT} }\nA: {OUTPUT}\n", 1, 12, "lone '}'"),
    ("U: {INPUT}\n{SYSTEM}A: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 2, 1, "before the first user content"),
    ("{SYSTEM}{SYSTEM}U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 1, 9, "twice"),
    ("U: {INPUT|upper}\nA: {OUTPUT}\n", 1, 4, "unknown filter"),
    ("U: {INPUT=x}\nA: {OUTPUT}\n", 1, 4, "only {SYSTEM}, {PROMPT} and {DATE} take a default"),
    ("S{SYSTEM}:U: {INPUT}\nA: {OUTPUT}\nX: {INPUT}\nA: {OUTPUT}\n", 1, 2, "cannot place the system block"),
    ("U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\n", 3, 4, "second exchange has no {OUTPUT}"),
    ("U: {INPUT}{INPUT}\nA: {OUTPUT}\n", 1, 11, "{INPUT} again"),
    # {SPLIT} before {SYSTEM}: where the preamble ends and a standalone system block begins
    ("P{SPLIT}U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 1, 2, "has no {SYSTEM}"),
    ("P{SPLIT}S{SPLIT}{SYSTEM}\nU: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 1, 10,
     "appears twice before the first {INPUT}"),
    ("P\nS:{SYSTEM}{SPLIT}\nU: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 2, 11, "{SPLIT} after {SYSTEM}"),
    ("P{SPLIT}U: <<{SYSTEM}>>{INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 1, 2,
     "inside the first user turn needs no {SPLIT}"),
    ("U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n{SPLIT}", 5, 1, "cannot go here"),
]


@pytest.mark.parametrize("spec,line,column,words", ERRORS)
def test_errors_have_position_and_message(spec, line, column, words):
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(spec)
    err = e.value
    assert (err.line, err.column) == (line, column), str(err)
    assert words in err.message, err.message
    # the message shows the offending source line and a caret under the column
    if spec:
        text = str(err).split("\n")
        assert text[1].strip() == spec.split("\n")[line - 1].strip() or text[1].strip() == ""
        assert text[2].index("^") == 4 + column - 1


def test_differing_repetitions_show_both_sides():
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec("U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nB: {OUTPUT}\n")
    assert "'\\nA: '" in e.value.message and "'\\nB: '" in e.value.message


def test_yaml_errors_point_into_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: bad\ndescription: x\nspec: |\n  U: {INPUT}\n  A: {OUTPUT}\n  U: {INPUT}\n  B: {OUTPUT}\n")
    with pytest.raises(SpecError) as e:
        tmplc.load(str(p))
    assert (e.value.filename, e.value.line, e.value.column) == (str(p), 7, 3)
    assert e.value.cli_text().startswith(f"{p}:7:3: error: the repetitions differ")
    p.write_text("name: bad\nspecs: x\n")
    with pytest.raises(SpecError) as e:
        tmplc.load(str(p))
    assert e.value.line == 2 and "unknown key 'specs'" in e.value.message


def test_yaml_block_scalar_chomping_sets_the_final_newline(tmp_path):
    keep = tmp_path / "a.yaml"
    keep.write_text("spec: |\n  U: {INPUT}\n  A: {OUTPUT}\n  U: {INPUT}\n  A: {OUTPUT}\n")
    strip = tmp_path / "b.yaml"
    strip.write_text("spec: |-\n  U: {INPUT}\n  A: {OUTPUT}\n  U: {INPUT}\n  A: {OUTPUT}\n")
    # with '|' the spec ends in "\n": the assistant suffix owns it; with '|-' the spec is
    # ambiguous... no: "\n" between exchanges then belongs to the user prefix of later turns,
    # and the head must end with it, which it does not -> a clear error, not a guess
    assert tmplc.load(str(keep)).structure.assistant.suffix == (Text("\n"),)
    with pytest.raises(SpecError) as e:
        tmplc.load(str(strip))
    assert "repetitions differ before {INPUT}" in e.value.message


def test_messages_errors_name_the_index():
    f = tmplc.parse_spec(CHATML_DEFAULT)
    with pytest.raises(tmplc.MessageError) as e:
        f.render([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}])
    assert e.value.index == 1 and "unknown role 'tool'" in str(e.value)
    with pytest.raises(tmplc.MessageError) as e:
        f.render([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}])
    assert e.value.index == 1 and "only allowed as the first message" in str(e.value)
    with pytest.raises(tmplc.MessageError) as e:
        f.render([{"role": "user", "content": None}])
    assert e.value.index == 0


def test_conversation_rules():
    f = tmplc.parse_spec("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n")
    # consecutive same-role messages: separate turns
    assert f.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]) == "U:a\nU:b\n"
    # starting with assistant is allowed
    assert f.render([{"role": "assistant", "content": "hi"}]) == "A:hi\n"
    # continue_final_message leaves the last assistant turn open
    assert f.render(msgs(("q", "par")), continue_final_message=True) == "U:q\nA:par"
    with pytest.raises(tmplc.MessageError):
        f.render(msgs(("q", None)), continue_final_message=True)
    inline = tmplc.parse_spec(LLAMA2, bos_token="<s>", eos_token="</s>")
    with pytest.raises(tmplc.MessageError) as e:
        inline.render([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}])
    assert e.value.index == 1


def test_segments_own_every_character_and_mark_trainable():
    f = tmplc.parse_spec(LLAMA3, bos_token="<|begin_of_text|>")
    m = msgs(("hi", "yo"), system="S")
    segs = f.segments(m)
    assert "".join(s.text for s in segs) == f.render(m)
    trained = [(s.text, s.part) for s in segs if s.trainable]
    assert trained == [("yo", "content"), ("<|eot_id|>", "suffix")]
    assert [s.role for s in segs] == [None, "system", "system", "system", "user", "user", "user",
                                      "assistant", "assistant", "assistant"]


def test_reply_marks_text_the_model_writes():
    spec = "{BOS}[INST] {INPUT}[/INST]{SPLIT}{REPLY} {OUTPUT}{EOS}[INST] {INPUT}[/INST]{SPLIT}{REPLY} {OUTPUT}{EOS}"
    f = tmplc.parse_spec(spec, bos_token="<s>", eos_token="</s>")
    st = f.structure
    assert st.user.suffix == (Text("[/INST]"),)
    assert st.assistant.prefix == () and st.assistant.lead == (Text(" "),)
    conv = msgs(("q", "a"))
    assert f.render(conv) == "<s>[INST] q[/INST] a</s>"
    # the generation prompt stops before the lead: the model writes " a"
    assert f.render(conv[:1], add_generation_prompt=True) == "<s>[INST] q[/INST]"
    assert f.render(conv, continue_final_message=True) == "<s>[INST] q[/INST] a"
    trained = [(s.text, s.part) for s in f.segments(conv) if s.trainable]
    assert trained == [(" ", "lead"), ("a", "content"), ("</s>", "suffix")]
    assert tmplc.parse_spec(f.to_spec()).structure == st


def test_reply_with_default_split_rules():
    f = tmplc.parse_spec("USER: {INPUT}\nASSISTANT:{REPLY} {OUTPUT}</s>\nUSER: {INPUT}\nASSISTANT:{REPLY} {OUTPUT}</s>\n")
    st = f.structure
    assert (st.user.suffix, st.assistant.prefix, st.assistant.lead) == ((Text("\n"),), (Text("ASSISTANT:"),), (Text(" "),))


@pytest.mark.parametrize("spec,line,column,words", [
    ("U: {INPUT}{REPLY}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 3, 11, "repetitions differ"),
    ("{REPLY}U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nA: {OUTPUT}\n", 1, 1, "{REPLY} marks where the model's reply"),
    ("U: {INPUT}\n{REPLY}{SPLIT}A: {OUTPUT}\nU: {INPUT}\n{REPLY}{SPLIT}A: {OUTPUT}\n", 2, 1, "{SPLIT} after {REPLY}"),
    ("U: {INPUT}\n{REPLY}A{REPLY}: {OUTPUT}\nU: {INPUT}\n{REPLY}A{REPLY}: {OUTPUT}\n", 2, 9, "twice"),
])
def test_reply_errors(spec, line, column, words):
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(spec)
    assert (e.value.line, e.value.column) == (line, column), str(e.value)
    assert words in e.value.message


# --------------------------------------------------------------------------- |lstrip |rstrip |nonempty {PROMPT=...}
from tmplc.ir import ChatFormat, Structure, SystemBlock, Turn  # noqa: E402
from tmplc.spec.files import load_yaml_spec, parse_structure  # noqa: E402

R1 = ("{BOS}{SYSTEM}<｜User｜>{INPUT}{SPLIT}<｜Assistant｜>{PROMPT=<think>\n}{OUTPUT}{EOS}"
      "<｜User｜>{INPUT}{SPLIT}<｜Assistant｜>{PROMPT=<think>\n}{OUTPUT}{EOS}")
CHATML_NONEMPTY = (
    "<|im_start|>system\n{SYSTEM|nonempty}<|im_end|>\n"
    "<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT}<|im_end|>\n"
    "<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT}<|im_end|>\n"
)


def _chatml(system_ph: str) -> str:
    return CHATML_NONEMPTY.replace("{SYSTEM|nonempty}", system_ph)


def test_lstrip_rstrip_filters_set_the_trim_side():
    spec = "S:{SYSTEM|rstrip}\nU:{INPUT|lstrip}\nA:{OUTPUT|rstrip}\nU:{INPUT|lstrip}\nA:{OUTPUT|rstrip}\n"
    st = tmplc.parse_spec(spec).structure
    assert (st.system.trim, st.system.trim_side) == (True, "right")
    assert (st.user.trim, st.user.trim_side) == (True, "left")
    assert (st.assistant.trim, st.assistant.trim_side) == (True, "right")
    assert not st.system.skip_empty and st.assistant.prompt_only == ""
    st2 = tmplc.parse_spec(spec.replace("{SYSTEM|rstrip}", "{SYSTEM|lstrip}")
                           .replace("|lstrip}\nA", "|rstrip}\nA").replace("{OUTPUT|rstrip}", "{OUTPUT|lstrip}")).structure
    assert (st2.system.trim_side, st2.user.trim_side, st2.assistant.trim_side) == ("left", "right", "left")
    # |trim is side "both"; no filter: no trim (side stays the default "both")
    st3 = tmplc.parse_spec(spec.replace("|rstrip", "|trim").replace("{INPUT|lstrip}", "{INPUT}")).structure
    assert (st3.system.trim, st3.system.trim_side, st3.assistant.trim_side) == (True, "both", "both")
    assert (st3.user.trim, st3.user.trim_side) == (False, "both")


def test_lstrip_vs_rstrip_render():
    f = tmplc.parse_spec("S:{SYSTEM|lstrip}\nU:{INPUT|lstrip}\nA:{OUTPUT|rstrip}\n"
                         "U:{INPUT|lstrip}\nA:{OUTPUT|rstrip}\n")
    m = msgs(("  x  ", "  x  "), system="  x  ")
    assert f.render(m) == "S:x  \nU:x  \nA:  x\n"
    g = tmplc.parse_spec("S:{SYSTEM|rstrip}\nU:{INPUT|rstrip}\nA:{OUTPUT|lstrip}\n"
                         "U:{INPUT|rstrip}\nA:{OUTPUT|lstrip}\n")
    assert g.render(m) == "S:  x\nU:  x\nA:x  \n"
    # unicode whitespace (Python str.strip semantics) and inner whitespace kept
    assert g.render(msgs(("\u3000a b\t\n", "\n\u00a0a b \u2003"))) == "U:\u3000a b\nA:a b \u2003\n"
    # continue_final_message: the open turn's content is trimmed as well
    assert g.render(msgs(("q", "  part  ")), continue_final_message=True) == "U:q\nA:part  "


def test_nonempty_sets_skip_empty_and_combines():
    st = tmplc.parse_spec(CHATML_NONEMPTY).structure
    assert (st.system.skip_empty, st.system.trim, st.system.default) == (True, False, None)
    for ph in ("{SYSTEM|trim|nonempty}", "{SYSTEM|nonempty|trim}"):
        sb = tmplc.parse_spec(_chatml(ph)).structure.system
        assert (sb.skip_empty, sb.trim, sb.trim_side) == (True, True, "both")
    sb = tmplc.parse_spec(_chatml("{SYSTEM|rstrip|nonempty=Be brief.}")).structure.system
    assert (sb.skip_empty, sb.trim, sb.trim_side, sb.default) == (True, True, "right", "Be brief.")
    assert tmplc.parse_spec(CHATML_DEFAULT).structure.system.skip_empty is False


CM_SYS = "<|im_start|>system\n{}<|im_end|>\n"
CM_TAIL = "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_nonempty_render_empty_vs_blank_system():
    f = tmplc.parse_spec(CHATML_NONEMPTY)
    conv = msgs(("hi", None))
    # "" counts as no system message: no block at all
    assert f.render(msgs(("hi", None), system=""), add_generation_prompt=True) == CM_TAIL
    # " " is not empty: rendered as sent
    assert f.render(msgs(("hi", None), system=" "), add_generation_prompt=True) == CM_SYS.format(" ") + CM_TAIL
    assert f.render(conv, add_generation_prompt=True) == CM_TAIL
    # without |nonempty an empty system message still renders its block
    plain = tmplc.parse_spec(_chatml("{SYSTEM}"))
    assert plain.render(msgs(("hi", None), system=""), add_generation_prompt=True) == CM_SYS.format("") + CM_TAIL
    # |trim|nonempty: the emptiness test is on the content as sent, so " " renders an empty block
    t = tmplc.parse_spec(_chatml("{SYSTEM|trim|nonempty}"))
    assert t.render(msgs(("hi", None), system=" "), add_generation_prompt=True) == CM_SYS.format("") + CM_TAIL
    assert t.render(msgs(("hi", None), system=""), add_generation_prompt=True) == CM_TAIL
    assert t.render(msgs(("hi", None), system=" S "), add_generation_prompt=True) == CM_SYS.format("S") + CM_TAIL


def test_nonempty_with_default_renders_the_default_for_empty_system():
    f = tmplc.parse_spec(_chatml("{SYSTEM|nonempty=Be brief.}"))
    expect_default = CM_SYS.format("Be brief.") + CM_TAIL
    assert f.render(msgs(("hi", None), system=""), add_generation_prompt=True) == expect_default
    assert f.render(msgs(("hi", None)), add_generation_prompt=True) == expect_default
    assert f.render(msgs(("hi", None), system=" "), add_generation_prompt=True) == CM_SYS.format(" ") + CM_TAIL
    # the default is not message 0: its segments carry no message index
    segs = f.segments(msgs(("hi", "yo"), system=""))
    assert [(s.text, s.message_index) for s in segs if s.role == "system"] == [
        ("<|im_start|>system\n", None), ("Be brief.", None), ("<|im_end|>\n", None)]
    assert [s.message_index for s in segs if s.role == "user"] == [1, 1, 1]
    # without |nonempty, "" is a system message and replaces the default
    g = tmplc.parse_spec(_chatml("{SYSTEM=Be brief.}"))
    assert g.render(msgs(("hi", None), system=""), add_generation_prompt=True) == CM_SYS.format("") + CM_TAIL


def test_nonempty_inside_the_first_user_turn():
    spec = ("{BOS}[INST] <<SYS>>\n{SYSTEM|nonempty}\n<</SYS>>\n\n{INPUT} [/INST]{SPLIT}{REPLY} {OUTPUT} {EOS}"
            "{BOS}[INST] {INPUT} [/INST]{SPLIT}{REPLY} {OUTPUT} {EOS}")
    f = tmplc.parse_spec(spec, bos_token="<s>", eos_token="</s>")
    assert f.structure.system.placement == "first_user" and f.structure.system.skip_empty
    assert f.render(msgs(("q", "a"), system="")) == "<s>[INST] q [/INST] a </s>"
    assert f.render(msgs(("q", "a"), system="S")) == "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nq [/INST] a </s>"
    # an empty system message is no system message: an assistant turn may come first (the
    # BOS belongs to the user prefix here)
    assert f.render([{"role": "system", "content": ""}, {"role": "assistant", "content": "a"}]) == " a </s>"
    with pytest.raises(tmplc.MessageError):
        f.render([{"role": "system", "content": "S"}, {"role": "assistant", "content": "a"}])


def test_prompt_parses_to_prompt_only():
    f = tmplc.parse_spec(R1, bos_token="<｜begin▁of▁sentence｜>", eos_token="<｜end▁of▁sentence｜>")
    st = f.structure
    assert st.assistant.prompt_only == "<think>\n"
    assert st.assistant.prefix == (Text("<｜Assistant｜>"),) and st.assistant.lead == ()
    assert st.user.prefix == (Text("<｜User｜>"),) and st.user.suffix == ()
    assert st.user.prompt_only == ""
    # the same spec without {PROMPT=...} is the same layout but for prompt_only
    plain = tmplc.parse_spec(R1.replace("{PROMPT=<think>\n}", "")).structure
    assert plain.assistant.prompt_only == "" and plain == Structure(preamble=st.preamble, system=st.system, user=st.user, assistant=Turn(prefix=st.assistant.prefix, suffix=st.assistant.suffix))


def test_prompt_render_only_in_the_generation_prompt():
    f = tmplc.parse_spec(R1, bos_token="<B>", eos_token="<E>")
    conv = msgs(("q1", "a1"), ("q2", None), system="S")
    assert f.render(conv, add_generation_prompt=True) == (
        "<B>S<｜User｜>q1<｜Assistant｜>a1<E><｜User｜>q2<｜Assistant｜><think>\n")
    assert f.render(conv) == "<B>S<｜User｜>q1<｜Assistant｜>a1<E><｜User｜>q2"
    full = msgs(("q1", "a1"), system="S")
    assert f.render(full, continue_final_message=True) == "<B>S<｜User｜>q1<｜Assistant｜>a1"
    gen = [s for s in f.segments(conv, add_generation_prompt=True) if s.part == "generation_prompt"]
    assert [(s.text, s.trainable, s.message_index) for s in gen] == [("<｜Assistant｜><think>\n", False, None)]
    assert not any("<think>" in s.text for s in f.segments(full))


def test_prompt_after_reply():
    spec = ("[INST] {INPUT} [/INST]{SPLIT}{REPLY}{PROMPT=<think>}  {OUTPUT}</s>"
            "[INST] {INPUT} [/INST]{SPLIT}{REPLY}{PROMPT=<think>}  {OUTPUT}</s>")
    f = tmplc.parse_spec(spec)
    a = f.structure.assistant
    assert (a.prefix, a.lead, a.prompt_only) == ((), (Text("  "),), "<think>")
    assert f.structure.user.suffix == (Text(" [/INST]"),)
    conv = msgs(("q", "a"))
    assert f.render(conv) == "[INST] q [/INST]  a</s>"
    # prefix (empty) + prompt text; the lead is the model's
    assert f.render(conv[:1], add_generation_prompt=True) == "[INST] q [/INST]<think>"
    assert f.to_spec() == spec


ROUND_TRIP = {
    "prompt_only": Structure(preamble=(SpecialToken("BOS"),), system=SystemBlock(placement="standalone"), user=Turn(prefix=(Text("<｜User｜>"),)), assistant=Turn(prefix=(Text("<｜Assistant｜>"),), suffix=(EOS,), prompt_only="<think>\n")),
    "prompt_only+lead": Structure(preamble=(BOS,), system=None, user=Turn(prefix=(Text("[INST] "),), suffix=(Text(" [/INST]"),), rule=ContentRule(trim=True)), assistant=Turn(prefix=(), suffix=(EOS,), lead=(Text(" "),), prompt_only="<think>\n\n", rule=ContentRule(trim=False))),
    "prompt_only+lead+prefix": Structure(preamble=(), system=None, user=Turn(prefix=(Text("USER: "),), suffix=(Text("\n"),)), assistant=Turn(prefix=(Text("ASSISTANT:"),), suffix=(Text("</s>\n"),), lead=(Text(" "),), prompt_only=" | = x", rule=ContentRule(trim=True, trim_side="left"))),
    "skip_empty": Structure(preamble=(), system=SystemBlock(placement="standalone", prefix=(Text("<|im_start|>system\n"),), suffix=(Text("<|im_end|>\n"),), skip_empty=True), user=Turn(prefix=(Text("<|im_start|>user\n"),), suffix=(Text("<|im_end|>\n"),)), assistant=Turn(prefix=(Text("<|im_start|>assistant\n"),), suffix=(Text("<|im_end|>\n"),))),
    "skip_empty+default": Structure(preamble=(), system=SystemBlock(placement="standalone", prefix=(Text("<|im_start|>system\n"),), suffix=(Text("<|im_end|>\n"),), default="You are helpful.", skip_empty=True), user=Turn(prefix=(Text("<|im_start|>user\n"),), suffix=(Text("<|im_end|>\n"),)), assistant=Turn(prefix=(Text("<|im_start|>assistant\n"),), suffix=(Text("<|im_end|>\n"),))),
    "skip_empty+empty default+trim": Structure(preamble=(), system=SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(Text("\n"),), trim=True, default="", trim_side="right", skip_empty=True), user=Turn(prefix=(Text("U:"),), suffix=(Text("\n"),)), assistant=Turn(prefix=(Text("A:"),), suffix=(Text("\n"),))),
    "skip_empty first_user+default+lstrip": Structure(preamble=(), system=SystemBlock(placement="first_user", prefix=(Text("<<SYS>>\n"),), suffix=(Text("\n<</SYS>>\n\n"),), trim=True, default="Default", trim_side="left", skip_empty=True), user=Turn(prefix=(BOS, Text("[INST] ")), suffix=(Text(" [/INST]"),), rule=ContentRule(trim=True, trim_side="right")), assistant=Turn(prefix=(), suffix=(Text(" "), EOS), lead=(Text(" "),), rule=ContentRule(trim=True, trim_side="left"))),
    "skip_empty after a fixed preamble": Structure(preamble=(Text("[gMASK]<sop>"),), system=SystemBlock(placement="standalone", prefix=(Text("<|system|>\n"),), suffix=(), skip_empty=True), user=Turn(prefix=(Text("<|user|>\n"),)), assistant=Turn(prefix=(Text("<|assistant|>\n"),), suffix=(), prompt_only="<think>")),
    "lstrip everywhere": Structure(preamble=(BOS,), system=SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(Text("\n"),), trim=True, trim_side="left"), user=Turn(prefix=(Text("U:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side="left")), assistant=Turn(prefix=(Text("A:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side="left"))),
    "rstrip everywhere": Structure(preamble=(BOS,), system=SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(Text("\n"),), trim=True, trim_side="right"), user=Turn(prefix=(Text("U:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side="right")), assistant=Turn(prefix=(Text("A:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side="right"))),
    "mixed sides + everything": Structure(preamble=(BOS,), system=SystemBlock(placement="standalone", prefix=(Text("S:"),), suffix=(EOS, Text("\n")), trim=True, default="d=1|x", trim_side="right", skip_empty=True), user=Turn(prefix=(Text("U:"),), suffix=(Text("\n"),), rule=ContentRule(trim=True, trim_side="both")), assistant=Turn(prefix=(Text("A:"),), suffix=(EOS, Text("\n")), lead=(Text(" "),), prompt_only="<think>\n", rule=ContentRule(trim=True, trim_side="left"))),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_round_trip_new_features(name):
    st = ROUND_TRIP[name]
    spec = ChatFormat(st).to_spec()
    assert parse_structure(spec) == st, spec
    assert parse_structure(ChatFormat(parse_structure(spec)).to_spec()) == st


def test_canonical_spec_text_of_new_features():
    assert tmplc.parse_spec(R1).to_spec() == R1
    assert ChatFormat(ROUND_TRIP["skip_empty+default"]).to_spec().startswith(
        "<|im_start|>system\n{SYSTEM|nonempty=You are helpful.}<|im_end|>\n")
    assert ChatFormat(ROUND_TRIP["skip_empty+empty default+trim"]).to_spec().startswith("S:{SYSTEM|rstrip|nonempty=}\n")
    assert ChatFormat(ROUND_TRIP["prompt_only+lead"]).to_spec() == (
        "{BOS}[INST] {INPUT|trim} [/INST]{SPLIT}{REPLY}{PROMPT=<think>\n\n} {OUTPUT}{EOS}"
        "[INST] {INPUT|trim} [/INST]{SPLIT}{REPLY}{PROMPT=<think>\n\n} {OUTPUT}{EOS}")
    # filters are written in canonical order whatever order the spec used
    assert tmplc.parse_spec(_chatml("{SYSTEM|nonempty|lstrip}")).to_spec() == _chatml("{SYSTEM|lstrip|nonempty}")


def test_prompt_text_with_braces_cannot_be_written():
    st = Structure(preamble=(), system=None, user=Turn(prefix=(Text("U:"),), suffix=(Text("\n"),)), assistant=Turn(prefix=(Text("A:"),), suffix=(Text("\n"),), prompt_only="{x}"))
    with pytest.raises(SpecError, match="braces"):
        ChatFormat(st).to_spec()


E4 = "U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n"  # the base spec the error cases edit

NEW_ERRORS = [
    # filters
    ("U:{INPUT|upper}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 3, "unknown filter |upper"),
    ("U:{INPUT|Trim}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 3, "unknown filter |Trim"),
    ("U:{INPUT|nonempty}\nA:{OUTPUT}\nU:{INPUT|nonempty}\nA:{OUTPUT}\n", 1, 3, "|nonempty applies only to {SYSTEM}"),
    ("U:{INPUT}\nA:{OUTPUT|nonempty}\nU:{INPUT}\nA:{OUTPUT|nonempty}\n", 2, 3, "|nonempty applies only to {SYSTEM}"),
    ("U:{INPUT|trim|lstrip}\nA:{OUTPUT}\nU:{INPUT|trim|lstrip}\nA:{OUTPUT}\n", 1, 3, "conflicting or repeated filters"),
    ("U:{INPUT}\nA:{OUTPUT|rstrip|lstrip}\nU:{INPUT}\nA:{OUTPUT}\n", 2, 3, "conflicting or repeated filters"),
    ("U:{INPUT|trim|trim}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 3, "conflicting or repeated filters"),
    ("{SYSTEM|nonempty|nonempty}U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 1, "conflicting or repeated filters"),
    ("{SYSTEM|lstrip|nonempty|trim}U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 1,
     "conflicting or repeated filters"),
    ("{BOS|lstrip}U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 1, "applies only to {INPUT}, {OUTPUT} and {SYSTEM}"),
    ("U:{INPUT|lstrip}\nA:{OUTPUT}\nU:{INPUT|rstrip}\nA:{OUTPUT}\n", 3, 3, "{INPUT|lstrip} in the first exchange"),
    # {THINK}...{/THINK} and the final answer's own filters
    ("U:{INPUT}\nA:{OUTPUT|lstrip_nl}\nU:{INPUT|lstrip_nl}\nA:{OUTPUT}\n", 3, 3, "|lstrip_nl applies only to {OUTPUT}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK|trim}<t>{REASONING}</t>{/THINK}{OUTPUT}\n", 4, 3,
     "|trim applies only to {INPUT}, {OUTPUT}, {SYSTEM} and {REASONING}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}<t>{REASONING|always}</t>{/THINK}{OUTPUT}\n", 4, 13,
     "|always applies only to {THINK}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}<t>{REASONING}</t>{OUTPUT}\n", 4, 3, "as a pair"),
    ("U:{INPUT}\nA:{THINK}<t>{REASONING}</t>{/THINK} {OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 2, 3,
     "{THINK}...{/THINK} goes right before an {OUTPUT}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}<t>{REASONING}</t>{/THINK} {OUTPUT}\n", 4, 3,
     "{THINK}...{/THINK} goes right before an {OUTPUT}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}<t></t>{/THINK}{OUTPUT}\n", 4, 3, "exactly one {REASONING}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}{REASONING}{BOS}{/THINK}{OUTPUT}\n", 4, 21,
     "{BOS} inside {THINK}"),
    ("U:{INPUT}{REASONING}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 10, "{REASONING} goes only inside {THINK}"),
    # {ELSE} inside {THINK}, {NONEMPTY}...{/NONEMPTY} after an {OUTPUT}
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}<t>{ELSE}x{REASONING}</t>{/THINK}{OUTPUT}\n", 4, 13,
     "{ELSE} goes once inside {THINK}...{/THINK}, after the {REASONING}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}<t>{REASONING}</t>{ELSE}a{ELSE}b{/THINK}{OUTPUT}\n", 4, 35,
     "{ELSE} goes once"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK|always}<t>{REASONING}</t>{ELSE}x{/THINK}{OUTPUT}\n", 4, 3,
     "{THINK|always} renders the block's own text without reasoning"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK}<t>{REASONING}</t>{/THINK}{OUTPUT}{ELSE}\n", 4, 44,
     "{ELSE} goes only inside {THINK}"),
    ("U:{INPUT}\nA:{OUTPUT}{ELSE}x\nU:{INPUT}\nA:{OUTPUT}\n", 2, 11, "{ELSE} goes only inside {THINK}"),
    ("U:{INPUT}\nA:{OUTPUT} {NONEMPTY}\n{/NONEMPTY}\nU:{INPUT}\nA:{OUTPUT}\n", 2, 12,
     "{NONEMPTY}...{/NONEMPTY} goes right before or after an {OUTPUT}"),
    ("U:{INPUT}\nA:{OUTPUT}{NONEMPTY}\nU:{INPUT}\nA:{OUTPUT}\n", 2, 11, "as a pair"),
    ("U:{INPUT}\nA:{OUTPUT}{NONEMPTY}{BOS}{/NONEMPTY}\nU:{INPUT}\nA:{OUTPUT}\n", 2, 21,
     "{BOS} inside {NONEMPTY}: it holds literal text only"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK|hidden}<t>{REASONING}</t>{ELSE}x{/THINK}{OUTPUT}\n", 4, 3,
     "renders the block's own text without reasoning"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{THINK|hidden|always}<t>{REASONING}</t>{/THINK}{OUTPUT}\n", 4, 3,
     "(|always is implied): keep one"),
    # {PROMPT=...}
    ("U:{INPUT}\nA:{PROMPT}{OUTPUT}\nU:{INPUT}\nA:{PROMPT}{OUTPUT}\n", 2, 3, "{PROMPT=text} needs its text"),
    ("U:{INPUT}\nA:{PROMPT=}{OUTPUT}\nU:{INPUT}\nA:{PROMPT=}{OUTPUT}\n", 2, 3, "{PROMPT=text} needs its text"),
    ("U:{INPUT}\nA:{PROMPT|trim=x}{OUTPUT}\nU:{INPUT}\nA:{PROMPT|trim=x}{OUTPUT}\n", 2, 3,
     "applies only to {INPUT}, {OUTPUT}, {SYSTEM} and {REASONING}"),
    # after {INPUT} but not right before {OUTPUT}
    ("U:{INPUT}{PROMPT=x}\nA:{OUTPUT}\nU:{INPUT}{PROMPT=x}\nA:{OUTPUT}\n", 1, 10, "right before {OUTPUT}"),
    ("U:{INPUT}\n{PROMPT=x}A:{OUTPUT}\nU:{INPUT}\n{PROMPT=x}A:{OUTPUT}\n", 2, 1, "right before {OUTPUT}"),
    ("U:{INPUT}\nA:{PROMPT=x}{PROMPT=x}{OUTPUT}\nU:{INPUT}\nA:{PROMPT=x}{PROMPT=x}{OUTPUT}\n", 2, 3,
     "right before {OUTPUT}"),
    # with {REPLY}: right after it, not elsewhere
    ("U:{INPUT}\nA:{PROMPT=x}{REPLY} {OUTPUT}\nU:{INPUT}\nA:{PROMPT=x}{REPLY} {OUTPUT}\n", 2, 3, "right after {REPLY}"),
    ("U:{INPUT}\nA:{REPLY} {PROMPT=x}{OUTPUT}\nU:{INPUT}\nA:{REPLY} {PROMPT=x}{OUTPUT}\n", 2, 11, "right after {REPLY}"),
    # outside an exchange's {INPUT}..{OUTPUT}
    ("{PROMPT=x}{SYSTEM}U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 1, "right before {OUTPUT}"),
    ("{SYSTEM}{PROMPT=x}U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 9, "right before {OUTPUT}"),
    ("U:{INPUT}\nA:{OUTPUT}{PROMPT=x}\nU:{INPUT}\nA:{OUTPUT}{PROMPT=x}\n", 2, 11, "right before {OUTPUT}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n{PROMPT=x}", 5, 1, "right before {OUTPUT}"),
    # only in one exchange, or with different text
    ("U:{INPUT}\nA:{PROMPT=x}{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 4, 3, "repetitions differ between {INPUT} and {OUTPUT}"),
    ("U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{PROMPT=x}{OUTPUT}\n", 4, 3, "repetitions differ between {INPUT} and {OUTPUT}"),
    ("U:{INPUT}\nA:{PROMPT=x}{OUTPUT}\nU:{INPUT}\nA:{PROMPT=y}{OUTPUT}\n", 4, 3, "'\\nA:{PROMPT=y}'"),
    ("U:{INPUT}\nA:{PROMPT=x}{OUTPUT}\nU:{INPUT}{PROMPT=x}\nA:{OUTPUT}\n", 3, 10, "right before {OUTPUT}"),
]


@pytest.mark.parametrize("spec,line,column,words", NEW_ERRORS)
def test_new_feature_errors(spec, line, column, words):
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(spec)
    err = e.value
    assert (err.line, err.column) == (line, column), str(err)
    assert words in err.message, err.message
    text = str(err).split("\n")
    assert text[1].strip() == spec.split("\n")[line - 1].strip()
    assert text[2].index("^") == 4 + column - 1


def test_prompt_text_differing_names_both():
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec("U:{INPUT}\nA:{PROMPT=x}{OUTPUT}\nU:{INPUT}\nA:{PROMPT=y}{OUTPUT}\n")
    assert "'\\nA:{PROMPT=x}'" in e.value.message and "'\\nA:{PROMPT=y}'" in e.value.message


def test_new_features_in_yaml_files(tmp_path):
    p = tmp_path / "r1.yaml"
    p.write_text("name: r1\nbos_token: <B>\neos_token: <E>\nspec: |-\n"
                 "  {BOS}{SYSTEM|trim|nonempty}<U>{INPUT|rstrip}{SPLIT}<A>{PROMPT=<think>}{OUTPUT|lstrip}{EOS}"
                 "<U>{INPUT|rstrip}{SPLIT}<A>{PROMPT=<think>}{OUTPUT|lstrip}{EOS}\n", encoding="utf-8")
    f = tmplc.load(str(p))
    st = f.structure
    assert (st.system.skip_empty, st.system.trim_side, st.user.trim_side, st.assistant.trim_side) == (
        True, "both", "right", "left")
    assert st.assistant.prompt_only == "<think>"
    assert f.render(msgs(("q ", " a"), ("r", None), system=""), add_generation_prompt=True) == (
        "<B><U>q<A>a<E><U>r<A><think>")
    assert load_yaml_spec(f.to_yaml()).structure == st
    p.write_text("spec: |\n  U:{INPUT}\n  A:{OUTPUT|lstrip|trim}\n  U:{INPUT}\n  A:{OUTPUT}\n")
    with pytest.raises(SpecError) as e:
        tmplc.load(str(p))
    assert (e.value.line, e.value.column) == (3, 5) and "conflicting" in e.value.message


# -- HF transformers renders tmplc's Jinja for these formats exactly like the reference ---------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402

HF_FORMATS = {name: ChatFormat(st) for name, st in ROUND_TRIP.items()}
HF_FORMATS["r1"] = tmplc.parse_spec(R1)
HF_FORMATS["chatml|trim|nonempty=d"] = tmplc.parse_spec(_chatml("{SYSTEM|trim|nonempty=d}"))
_edge = hst.sampled_from(["", " ", "  x  ", "\n", "x", "\t a \n", "\u3000y\u2003", "<think>\nr</think>z"])


@settings(max_examples=60, deadline=None)
@given(name=hst.sampled_from(sorted(HF_FORMATS)), system=hst.one_of(hst.none(), _edge),
       turns=hst.lists(hst.tuples(_edge, _edge), min_size=1, max_size=3), last=hst.booleans(),
       gen=hst.booleans(), first_assistant=hst.booleans())
def test_transformers_renders_new_features_like_reference(name, system, turns, last, gen, first_assistant):
    from transformers import AutoTokenizer  # noqa: F401  (the [hf] extra)

    from conftest import load_tokenizer

    tok = load_tokenizer("llama3")
    fmt = HF_FORMATS[name]
    m = msgs(*turns, system=system)
    if not last:
        m = m[:-1]
    if first_assistant:
        m = m[:1 if system is not None else 0] + [{"role": "assistant", "content": "  hi  "}] + m[1 if system is not None else 0:]
    kw = dict(bos_token=tok.bos_token, eos_token=tok.eos_token)
    try:
        expected = fmt.render(m, add_generation_prompt=gen, **kw)
    except tmplc.MessageError:
        from jinja2.exceptions import TemplateError

        with pytest.raises(TemplateError, match="tmplc: message"):
            tok.apply_chat_template(m, chat_template=fmt.to_jinja(), tokenize=False, add_generation_prompt=gen)
        return
    got = tok.apply_chat_template(m, chat_template=fmt.to_jinja(), tokenize=False, add_generation_prompt=gen)
    assert got == expected


def test_transformers_hand_computed_cases():
    from conftest import load_tokenizer

    tok = load_tokenizer("llama3")
    B, E = tok.bos_token, tok.eos_token

    def hf(fmt, m, **kw):
        return tok.apply_chat_template(m, chat_template=fmt.to_jinja(), tokenize=False, **kw)

    r1 = HF_FORMATS["r1"]
    assert hf(r1, msgs(("q", None)), add_generation_prompt=True) == f"{B}<｜User｜>q<｜Assistant｜><think>\n"
    assert hf(r1, msgs(("q", "a"))) == f"{B}<｜User｜>q<｜Assistant｜>a{E}"
    d = HF_FORMATS["chatml|trim|nonempty=d"]
    assert hf(d, msgs(("hi", None), system=""), add_generation_prompt=True) == CM_SYS.format("d") + CM_TAIL
    assert hf(d, msgs(("hi", None), system=" "), add_generation_prompt=True) == CM_SYS.format("") + CM_TAIL
    lst = HF_FORMATS["lstrip everywhere"]
    assert hf(lst, msgs(("  x  ", "  x  "), system="  x  ")) == f"{B}S:x  \nU:x  \nA:x  \n"
    rst = HF_FORMATS["rstrip everywhere"]
    assert hf(rst, msgs(("  x  ", "  x  "), system="  x  ")) == f"{B}S:  x\nU:  x\nA:  x\n"


def test_trim_side_without_trim_is_normalised():
    # trim_side means nothing without trim: one value per meaning, so the layout has a spec
    st = Structure(preamble=(), system=None, user=Turn(prefix=(Text("U:"),), suffix=(Text("\n"),), rule=ContentRule(trim=False, trim_side="left")), assistant=Turn(prefix=(Text("A:"),), suffix=(Text("\n"),)))
    assert st.user.trim_side == "both" and st.user == Turn(prefix=(Text("U:"),), suffix=(Text("\n"),))
    assert ChatFormat(st).to_spec() == "U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n"
    assert SystemBlock(trim=False, trim_side="right").trim_side == "both"


# ---------------------------------------------------------------------------------------------
# {NOSYSTEM}...{/NOSYSTEM}: the text rendered instead of the system block without a system message

SPARK_LIKE = ("{BOS}{NOSYSTEM}<|System|>\nyou are helpful.{EOS}{/NOSYSTEM}<|System|>\nyou are helpful.\n\n{SYSTEM}{EOS}"
              "<|User|>{INPUT}{EOS}<|Bot|>{OUTPUT}{EOS}<|User|>{INPUT}{EOS}<|Bot|>{OUTPUT}{EOS}")


def test_nosystem_block_parses_renders_and_round_trips():
    fmt = tmplc.parse_spec(SPARK_LIKE, bos_token="<s>", eos_token="</s>")
    sb = fmt.structure.system
    assert sb.placement == "standalone" and sb.default is None
    assert sb.absent == (Text("<|System|>\nyou are helpful."), SpecialToken("EOS"))
    assert fmt.structure.preamble == (SpecialToken("BOS"),)
    q = [{"role": "user", "content": "q"}]
    assert fmt.render(q, True) == "<s><|System|>\nyou are helpful.</s><|User|>q</s><|Bot|>"
    assert fmt.render([{"role": "system", "content": "S"}] + q) == \
        "<s><|System|>\nyou are helpful.\n\nS</s><|User|>q</s>"
    assert fmt.to_spec() == SPARK_LIKE
    assert tmplc.parse_spec(fmt.to_spec()).structure == fmt.structure
    from tmplc.targets.json_ir import from_dict
    assert from_dict(fmt.to_dict()).structure == fmt.structure


def test_nosystem_with_nonempty_and_date():
    import datetime as dt

    spec = ("{NOSYSTEM}[sys] Today is {DATE=%Y-%m-%d}.\n{/NOSYSTEM}[sys] {SYSTEM|nonempty}\n"
            "[u] {INPUT}\n[a] {OUTPUT}\n[u] {INPUT}\n[a] {OUTPUT}\n")
    fmt = tmplc.parse_spec(spec)
    d = dt.date(2025, 5, 6)
    for system in ([], [{"role": "system", "content": ""}]):
        assert fmt.render(system + [{"role": "user", "content": "q"}], date=d) == "[sys] Today is 2025-05-06.\n[u] q\n"
    assert fmt.render([{"role": "system", "content": "S"}, {"role": "user", "content": "q"}], date=d) == \
        "[sys] S\n[u] q\n"
    assert fmt.to_spec() == spec


@pytest.mark.parametrize("spec, line, column, words", [
    ("{NOSYSTEM}x{/NOSYSTEM}U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 1, "needs a {SYSTEM}"),
    ("{NOSYSTEM}x{SYSTEM}\nU:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 1, "as a pair"),
    ("{NOSYSTEM}x{INPUT}{/NOSYSTEM}S:{SYSTEM}\nU:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 1,
     "before the first {INPUT}"),
    ("{NOSYSTEM}x{SPLIT}{/NOSYSTEM}S:{SYSTEM}\nU:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 12,
     "inside {NOSYSTEM}"),
    ("P{SPLIT}{NOSYSTEM}x{/NOSYSTEM}S:{SYSTEM}\nU:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 9,
     "remove the {SPLIT}"),
    ("{NOSYSTEM}x{/NOSYSTEM}S:{SYSTEM=d}\nU:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 1,
     "excludes a default"),
    ("S:{SYSTEM}{NOSYSTEM}x{/NOSYSTEM}\nU:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", 1, 11, "before {SYSTEM}"),
])
def test_nosystem_errors(spec, line, column, words):
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(spec)
    assert (e.value.line, e.value.column) == (line, column), str(e.value)
    assert words in e.value.message


# ---------------------------------------------------------------------------------------------
# {SPLIT} after the first {OUTPUT}: the last answer of a conversation ends differently

def test_final_suffix_parses_renders_and_round_trips():
    spec = "<u>{INPUT}</u>\n<a>{OUTPUT}<end>\n{SPLIT}<u>{INPUT}</u>\n<a>{OUTPUT}<return>"
    fmt = tmplc.parse_spec(spec)
    a = fmt.structure.assistant
    assert a.suffix == (Text("<end>\n"),) and a.final_suffix == (Text("<return>"),)
    assert fmt.structure.user.prefix == (Text("<u>"),)
    m = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}]
    assert fmt.render(m + m) == "<u>q</u>\n<a>x<end>\n<u>q</u>\n<a>x<return>"
    assert fmt.render(m + m[:1], add_generation_prompt=True) == "<u>q</u>\n<a>x<end>\n<u>q</u>\n<a>"
    assert fmt.render(m, continue_final_message=True) == "<u>q</u>\n<a>x"
    assert fmt.to_spec() == spec
    # an open last turn (nothing after the last answer)
    open_ = tmplc.parse_spec("<u>{INPUT}</u>\n<a>{OUTPUT}<end>\n{SPLIT}<u>{INPUT}</u>\n<a>{OUTPUT}")
    assert open_.structure.assistant.final_suffix == ()
    assert open_.render(m + m) == "<u>q</u>\n<a>x<end>\n<u>q</u>\n<a>x"
    # the same ending twice: no final_suffix (one value per meaning)
    same = tmplc.parse_spec("<u>{INPUT}</u>\n<a>{OUTPUT}<end>\n{SPLIT}<u>{INPUT}</u>\n<a>{OUTPUT}<end>\n")
    assert same.structure.assistant.final_suffix is None


def test_final_suffix_in_hf_jinja():
    fmt = tmplc.parse_spec("<u>{INPUT}</u>\n<a>{OUTPUT}<end>\n{SPLIT}<u>{INPUT}</u>\n<a>{OUTPUT}<return>")
    from tmplc.jinja_env import render_template

    m = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "x"}]
    for msgs, gen in ((m, False), (m + m, False), (m + m[:1], True)):
        assert render_template(fmt.to_jinja(), msgs, add_generation_prompt=gen) == fmt.render(msgs, gen)


def test_two_splits_after_the_first_output_is_an_error():
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec("U:{INPUT}\nA:{OUTPUT}\n{SPLIT}x{SPLIT}U:{INPUT}\nA:{OUTPUT}\n")
    assert "appears twice" in e.value.message and (e.value.line, e.value.column) == (3, 9)


@pytest.mark.parametrize("fmt_, bad", [("%d %b %Y %H:%M", "%H, %M"), ("%c", "%c"), ("%Y-%m-%d %", "%"),
                                       ("%z", "%z")])
def test_date_formats_are_date_conversions_only(fmt_, bad):
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec("{DATE=" + fmt_ + "}U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n")
    assert (e.value.line, e.value.column) == (1, 1)
    assert f"{bad} is not a date conversion" in e.value.message


# ---------------------------------------------------------------------------------------------
# answer rules of reasoning templates: |drop_think..., |lstrip_nl, |trim_first, and the final
# answer's own rule and {THINK}...{REASONING}...{/THINK} block (the second {OUTPUT})

import json  # noqa: E402

from strategies import chat_formats, structures  # noqa: E402
from tmplc.ir import DROP_THINK, FinalAnswer, ThinkBlock  # noqa: E402
from tmplc.spec.vocabulary import THINKS  # noqa: E402
from tmplc.targets.json_ir import from_dict, to_dict  # noqa: E402


def _answers(first: str, second: str | None = None) -> str:
    """A spec whose assistant content placeholders are ``first`` and ``second``."""
    return f"U:{{INPUT}}\nA:{first}\nU:{{INPUT}}\nA:{first if second is None else second}\n"


def test_drop_think_filters_are_the_drop_think_values():
    assert sorted(THINKS.values()) == sorted(DROP_THINK[1:])
    for filt, mode in THINKS.items():
        a = parse_structure(_answers("{OUTPUT|" + filt + "}")).assistant
        assert (a.drop_think, a.final) == (mode, None)
        assert ChatFormat(parse_structure(_answers("{OUTPUT|" + filt + "}"))).to_spec() == \
            _answers("{OUTPUT|" + filt + "}")


@settings(max_examples=60, deadline=None)
@given(structures(reasoning=True))
def test_round_trips_of_answer_rules(structure):
    """spec, YAML and JSON round trips of layouts that all have answer rules."""
    fmt = ChatFormat(structure, tmplc.ir.Metadata(bos_token="<s>", eos_token="</s>"))
    spec = fmt.to_spec()
    assert parse_structure(spec) == structure
    assert ChatFormat(parse_structure(spec)).to_spec() == spec  # canonical
    assert load_yaml_spec(fmt.to_yaml()).structure == structure
    assert from_dict(json.loads(json.dumps(to_dict(fmt)))).structure == structure


@settings(max_examples=60, deadline=None)
@given(structures())
def test_json_round_trip_generated(structure):
    assert from_dict(json.loads(json.dumps(to_dict(ChatFormat(structure))))).structure == structure


@pytest.mark.parametrize("written, same_as", [
    # a strip that a later step repeats is dropped: one value per meaning
    ("{OUTPUT|drop_think_lstrip_nl|lstrip_nl}", "{OUTPUT|drop_think|lstrip_nl}"),
    ("{OUTPUT|lstrip_nl|drop_think_first_lstrip_nl}", "{OUTPUT|drop_think_first|lstrip_nl}"),
    ("{OUTPUT|trim|drop_think_trim}", "{OUTPUT|trim|drop_think}"),
    ("{OUTPUT|trim|drop_think_strip_nl}", "{OUTPUT|trim|drop_think}"),
    ("{OUTPUT|trim|drop_think_lstrip_nl|lstrip_nl}", "{OUTPUT|trim|drop_think}"),
    ("{OUTPUT|lstrip|drop_think_lstrip_nl}", "{OUTPUT|lstrip|drop_think}"),
    ("{OUTPUT|lstrip|lstrip_nl}", "{OUTPUT|lstrip}"),
    ("{OUTPUT|lstrip_nl|trim}", "{OUTPUT|trim}"),
    # the second {OUTPUT} like the first: no final-answer rule
    ("{OUTPUT|drop_think_lstrip_nl}", "{OUTPUT|drop_think|lstrip_nl}"),
])
def test_answer_rules_are_normalised(written, same_as):
    a = parse_structure(_answers(written)).assistant
    b = parse_structure(_answers(same_as)).assistant
    if written == "{OUTPUT|drop_think_lstrip_nl}":  # (as the first {OUTPUT} of a spec, not the same)
        a = parse_structure(_answers(written, same_as)).assistant
        assert a.final == FinalAnswer(drop_think="last", lstrip_nl=True) and a.drop_think == "last_lstrip_nl"
        return
    assert a == b and a.final is None
    # and they render alike, the normalised value as the one written
    for text in ["<think>\n r \n</think>\n\n a \n", "\n\n x</think>", " \n", "a</think>\n</think>\n b"]:
        assert a.content(text) == answer_rules.apply(text, a) == answer_rules.apply(text, b)


@pytest.mark.parametrize("kept", [
    "{OUTPUT|rstrip|drop_think_lstrip_nl}",  # a right trim does not repeat a left strip
    "{OUTPUT|lstrip|drop_think_strip_nl}",  # nor a left trim a right one
    "{OUTPUT|lstrip|drop_think_trim}",
    "{OUTPUT|rstrip|lstrip_nl}",
    "{OUTPUT|trim|drop_think_lstrip_nl|trim_first}",  # trimmed first, the answer after </think> is not
    "{OUTPUT|drop_think_strip_nl|lstrip_nl}",
])
def test_answer_rules_that_are_not_redundant_are_kept(kept):
    st = parse_structure(_answers(kept))
    assert ChatFormat(st).to_spec() == _answers(kept)


def test_trim_first_trims_before_the_reasoning_is_dropped():
    first = parse_structure(_answers("{OUTPUT|trim|drop_think_lstrip_nl|trim_first}")).assistant
    after = parse_structure(_answers("{OUTPUT|trim|drop_think_lstrip_nl}")).assistant
    assert first.trim_first and not after.trim_first and after.drop_think == "last"
    text = " r </think>\n\n a \n"
    assert first.content(text) == " a"  # strip, split, lstrip('\n'): the space after the newlines stays
    assert after.content(text) == "a"
    # the final answer's block sees the trimmed content
    fmt = tmplc.parse_spec(_answers("{OUTPUT}", "{THINK}<t>{REASONING}</t>{/THINK}{OUTPUT|trim|drop_think|trim_first}"))
    assert fmt.render(msgs(("q", " r </think> a "))) == "U:q\nA:<t>r </t> a\n"
    fmt2 = tmplc.parse_spec(_answers("{OUTPUT}", "{THINK}<t>{REASONING}</t>{/THINK}{OUTPUT|trim|drop_think}"))
    assert fmt2.render(msgs(("q", " r </think> a "))) == "U:q\nA:<t> r </t>a\n"


def test_final_scope_goes_on_the_second_output():
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(_answers("{OUTPUT|final_last_answer}", "{OUTPUT}"))
    assert (e.value.line, e.value.column) == (2, 3) and "go on the second {OUTPUT}" in e.value.message
    with pytest.raises(SpecError, match="one of |final_last_answer and |final_after_user"):
        tmplc.parse_spec(_answers("{OUTPUT}", "{OUTPUT|final_last_answer|final_after_user}"))
    # without a final rule or ending of its own, every scope is the same layout
    assert parse_structure(_answers("{OUTPUT}", "{OUTPUT|final_after_user}")).final_scope == "last"


def test_how_reasoning_content_is_read_goes_on_the_second_output():
    """``|reasoning_verbatim`` (MiniMax-M2) and ``|no_reasoning_field`` (QwQ) on the final answer's
    {OUTPUT}; misplaced, contradictory or meaningless ones are refused where they are written."""
    block = "{THINK}<t>{REASONING}</t>{/THINK}"
    fmt = tmplc.parse_spec(_answers("{OUTPUT}", block + "{OUTPUT|reasoning_verbatim}"))
    assert fmt.structure.given_reasoning == "verbatim" and "{OUTPUT|reasoning_verbatim}" in fmt.to_spec()
    answer = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "reasoning_content": "\nr\n"}]
    assert fmt.render(answer) == "U:q\nA:<t>\nr\n</t>a\n"
    assert tmplc.parse_spec(_answers("{OUTPUT}", block + "{OUTPUT}")).render(answer) == "U:q\nA:<t>r</t>a\n"
    trimmed = tmplc.parse_spec(_answers("{OUTPUT}", block + "{OUTPUT|reasoning_trim}"))
    assert trimmed.structure.given_reasoning == "trim" and "{OUTPUT|reasoning_trim}" in trimmed.to_spec()
    assert trimmed.render([answer[0], {**answer[1], "reasoning_content": " \nr \n"}]) == "U:q\nA:<t>r</t>a\n"
    qwq = tmplc.parse_spec(_answers("{OUTPUT|drop_think}", "{OUTPUT|no_reasoning_field}"))
    assert qwq.structure.given_reasoning == "refused" and "{OUTPUT|no_reasoning_field}" in qwq.to_spec()
    with pytest.raises(tmplc.MessageError, match="does not read reasoning_content") as e:
        qwq.render(answer)
    assert e.value.index == 1
    for spec, line, col, what in (
            (_answers("{OUTPUT|drop_think|no_reasoning_field}", "{OUTPUT}"), 2, 3, "go on the second {OUTPUT}"),
            (_answers("{OUTPUT}", block + "{OUTPUT|reasoning_verbatim|no_reasoning_field}"), 4, 36, "contradict"),
            (_answers("{OUTPUT}", "{OUTPUT|no_reasoning_field}"), 4, 3, "renders no reasoning"),
            (_answers("{OUTPUT|drop_think}", "{OUTPUT|reasoning_verbatim}"), 4, 3, "no {THINK} block")):
        with pytest.raises(SpecError) as e:
            tmplc.parse_spec(spec)
        assert (e.value.line, e.value.column) == (line, col) and what in e.value.message, (spec, e.value)


@pytest.mark.parametrize("output", ["{OUTPUT|drop_think|trim_first}", "{OUTPUT|trim_first}",
                                    "{OUTPUT|lstrip_nl|trim_first}"])
def test_trim_first_needs_a_trim_filter(output):
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(_answers(output))
    assert (e.value.line, e.value.column) == (2, 3)
    assert "|trim_first on {OUTPUT} needs a trim filter" in e.value.message


@pytest.mark.parametrize("first, second, where", [
    ("{OUTPUT|trim|trim_first}", None, (2, 3)),
    ("{OUTPUT}", "{OUTPUT|trim|trim_first}", (4, 3)),
    # every answer's block is before the first {OUTPUT} only when it is before both
    ("{THINK}<t>{REASONING}</t>{/THINK}{OUTPUT|trim|trim_first}", "{OUTPUT|trim|trim_first}", (4, 3)),
])
def test_trim_first_needs_a_drop_think_filter_or_a_reasoning_block(first, second, where):
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(_answers(first, second))
    assert (e.value.line, e.value.column) == where
    assert "needs a |drop_think filter or a {THINK} block" in e.value.message


def test_trim_first_with_a_reasoning_block_and_no_drop():
    """The block's reasoning is split off the trimmed content; the answer is kept whole."""
    block = "{THINK}<t>{REASONING}</t>{/THINK}"
    spec = _answers("{OUTPUT|trim}", block + "{OUTPUT|trim|trim_first}")
    fmt = tmplc.parse_spec(spec)
    assert fmt.structure.assistant.final.trim_first and fmt.to_spec() == spec
    untrimmed_first = tmplc.parse_spec(_answers("{OUTPUT|trim}", block + "{OUTPUT|trim}"))
    conv = msgs(("q", " r</think> a "))
    assert fmt.render(conv) == "U:q\nA:<t>r</t>r</think> a\n"
    # without |trim_first the reasoning is read off the untrimmed content: " r"
    assert untrimmed_first.render(conv) == "U:q\nA:<t> r</t>r</think> a\n"


QWEN3_LIKE = ("<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT|drop_think_lstrip_nl}<|im_end|>\n"
              "<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{THINK|always}<think>\n{REASONING}\n"
              "</think>\n\n{/THINK}{OUTPUT|drop_think|lstrip_nl}<|im_end|>\n")


def test_think_block_parses_renders_and_round_trips():
    fmt = tmplc.parse_spec(QWEN3_LIKE)
    a = fmt.structure.assistant
    assert (a.drop_think, a.lstrip_nl, a.trim) == ("last_lstrip_nl", False, False)
    assert a.final == FinalAnswer(drop_think="last", lstrip_nl=True, think=ThinkBlock("<think>\n", "\n</think>\n\n", True, False))
    assert fmt.to_spec() == QWEN3_LIKE
    assert parse_structure(fmt.to_spec()) == fmt.structure
    assert from_dict(fmt.to_dict()).structure == fmt.structure
    u, asst = "<|im_start|>user\n", "<|im_start|>assistant\n"
    conv = msgs(("q", "<think>\nr\n</think>\n\na"), ("q2", "<think>\nr2</think>\n\nb"))
    # earlier answers: reasoning dropped; the final one: re-wrapped in the block
    assert fmt.render(conv) == (f"{u}q<|im_end|>\n{asst}a<|im_end|>\n"
                                f"{u}q2<|im_end|>\n{asst}<think>\nr2\n</think>\n\nb<|im_end|>\n")
    # |always: the block without reasoning; the answer's leading newlines go (|lstrip_nl)
    assert fmt.render(msgs(("q", "\n\nb"))) == f"{u}q<|im_end|>\n{asst}<think>\n\n</think>\n\nb<|im_end|>\n"
    # an earlier answer without </think> is kept as it is (the drop and its lstrip are conditional)
    assert fmt.render(msgs(("q", "\n\nb"), ("q2", None))).startswith(f"{u}q<|im_end|>\n{asst}\n\nb<|im_end|>\n")
    # the generation prompt is the prefix; continue_final_message renders the final answer's rule
    assert fmt.render(msgs(("q", None)), add_generation_prompt=True) == f"{u}q<|im_end|>\n{asst}"
    assert fmt.render(msgs(("q", "<think>r</think>a")), continue_final_message=True) == \
        f"{u}q<|im_end|>\n{asst}<think>\nr\n</think>\n\na"
    # the trainable content of the final answer holds its block (a content segment of its own,
    # marked reasoning: the assistant_no_reasoning policy masks it)
    segs = fmt.segments(msgs(("q", "<think>r</think>a")))
    assert [(s.text, s.part, s.reasoning) for s in segs if s.trainable] == [
        ("<think>\nr\n</think>\n\n", "content", True), ("a", "content", False), ("<|im_end|>\n", "suffix", False)]


@pytest.mark.parametrize("block, content, shown", [
    ("{THINK}<t>{REASONING}</t>{/THINK}", "x", "x"),  # no reasoning, no |always: no block
    ("{THINK|always}<t>{REASONING}</t>{/THINK}", "x", "<t></t>x"),
    ("{THINK}<t>{REASONING}</t>{/THINK}", " r </think>x", "<t> r </t>x"),
    ("{THINK}<t>{REASONING|trim}</t>{/THINK}", " r </think>x", "<t>r</t>x"),
    ("{THINK}<t>{REASONING|trim}</t>{/THINK}", "  </think>x", "<t></t>x"),  # not empty before |trim
    ("{THINK}{REASONING}{/THINK}", "<think>\n\nr\n\n</think>x</think>y", "ry"),
    ("{THINK}[{REASONING}]{/THINK}", "a<think>b<think>\nc\n</think>d", "[c]d"),
])
def test_think_block_reasoning(block, content, shown):
    fmt = tmplc.parse_spec(_answers("{OUTPUT|drop_think}", block + "{OUTPUT|drop_think}"))
    assert fmt.render(msgs(("q", content))) == f"U:q\nA:{shown}\n"
    assert fmt.to_spec() == _answers("{OUTPUT|drop_think}", block + "{OUTPUT|drop_think}")


def test_final_answer_keeps_what_earlier_answers_drop():
    # QwQ-like: earlier answers without their reasoning, the final answer as sent
    fmt = tmplc.parse_spec(_answers("{OUTPUT|drop_think}", "{OUTPUT}"))
    a = fmt.structure.assistant
    assert a.drop_think == "last" and a.final == FinalAnswer()
    conv = msgs(("q", "r</think>a"), ("q2", "r2</think>b"))
    assert fmt.render(conv) == "U:q\nA:a\nU:q2\nA:r2</think>b\n"
    assert fmt.to_spec() == _answers("{OUTPUT|drop_think}", "{OUTPUT}")


def test_answer_rules_one_value_per_meaning():
    """Content rules that render every text alike are one IR value (after normalisation)."""
    import itertools

    pieces = ["", "\n", " ", "x", "</think>", "<think>", "\t"]
    texts = sorted({"".join(p) for n in range(5) for p in itertools.product(pieces, repeat=n)})
    rules = {Turn(rule=ContentRule(drop_think=d, lstrip_nl=nl, trim=t, trim_side=side, trim_first=first))
             for d, nl, t, side, first in itertools.product(DROP_THINK, (False, True), (False, True),
                                                            ("both", "left", "right"), (False, True))}
    meaning: dict[tuple, list] = {}
    for rule in rules:
        meaning.setdefault(tuple(answer_rules.apply(x, rule) for x in texts), []).append(
            (rule.drop_think, rule.lstrip_nl, rule.trim, rule.trim_side, rule.trim_first))
    assert [sorted(v) for v in meaning.values() if len(v) > 1] == []


# -- lossless JSON (generated from the dataclass fields) ------------------------------------------

@pytest.mark.parametrize("name", sorted(tmplc.registry))
def test_json_round_trip_is_the_whole_format_for_every_entry(name):
    """``from_dict(to_dict(f)) == f``: the whole ChatFormat (notes, source, stop included)."""
    fmt = tmplc.registry[name]
    assert fmt.meta.source or fmt.meta.notes or fmt.meta.description  # there is metadata to lose
    back = from_dict(json.loads(json.dumps(to_dict(fmt))))
    assert back == fmt
    assert back.meta == fmt.meta


@settings(max_examples=60, deadline=None)
@given(chat_formats(structures(reasoning=None)).map(lambda f: f.with_meta(
    description="d", aliases=("x", "y"), eot_token="<eot>", stop=("<eot>",), notes="two\nlines", source="s")))
def test_json_round_trip_of_generated_formats_is_whole(fmt):
    assert from_dict(json.loads(json.dumps(to_dict(fmt)))) == fmt


def test_json_unknown_field_is_an_error():
    data = to_dict(tmplc.load("chatml"))
    data["structure"]["assistant"]["no_such_field"] = 1
    with pytest.raises(ValueError, match="no_such_field"):
        from_dict(data)


def test_an_empty_answer_refused_goes_on_the_second_output():
    """``{OUTPUT|no_empty_answer}`` (Ministral 3's template raises on an empty answer): every answer
    with empty content and no tool calls is a MessageError at its index, in the reference and in the
    HF target; an answer of whitespace renders; the spec writes the filter back; on the first
    {OUTPUT} it is refused where it is written."""
    from jinja2 import TemplateError

    from tmplc.jinja_env import render_template

    fmt = tmplc.parse_spec(_answers("{OUTPUT}", "{OUTPUT|no_empty_answer}"))
    assert fmt.structure.refuses_empty_answers and "{OUTPUT|no_empty_answer}" in fmt.to_spec()
    assert tmplc.parse_spec(fmt.to_spec()).structure == fmt.structure
    for content in ("",):  # (None without tool calls is refused for every format: content must be a string)
        msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": content},
                {"role": "user", "content": "q2"}]
        with pytest.raises(tmplc.MessageError, match="refuses an empty answer") as e:
            fmt.render(msgs)
        assert e.value.index == 1
        with pytest.raises(TemplateError, match="refuses an empty answer"):
            render_template(fmt.to_jinja(), msgs)
    ok = [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]
    assert fmt.render(ok) == render_template(fmt.to_jinja(), ok) == "U:q\nA: \n"
    assert tmplc.parse_spec(_answers("{OUTPUT}")).render(ok[:1] + [{"role": "assistant", "content": ""}]) == "U:q\nA:\n"
    with pytest.raises(SpecError) as e:
        tmplc.parse_spec(_answers("{OUTPUT|no_empty_answer}", "{OUTPUT}"))
    assert (e.value.line, e.value.column) == (2, 3) and "goes on the second {OUTPUT}" in e.value.message


LAGUNA_XS_LIKE = ("<user>\n{INPUT}\n</user>\n{SPLIT}<assistant>\n{PROMPT=</think>}{THINK}<think>\n{REASONING|trim}\n"
                  "</think>\n{ELSE}</think>\n{/THINK}{OUTPUT|trim|drop_think}{NONEMPTY}\n{/NONEMPTY}</assistant>\n"
                  "<user>\n{INPUT}\n</user>\n{SPLIT}<assistant>\n{PROMPT=</think>}{THINK}<think>\n{REASONING|trim}\n"
                  "</think>\n{ELSE}</think>\n{/THINK}{OUTPUT|trim|drop_think}{NONEMPTY}\n{/NONEMPTY}</assistant>\n")


def test_think_block_else_and_text_after_nonempty_answers():
    """Laguna-XS: an answer without reasoning renders "</think>\\n" in the block's place ({ELSE}), and
    "\\n" follows the (trimmed) answer only when it is not empty ({NONEMPTY})."""
    fmt = tmplc.parse_spec(LAGUNA_XS_LIKE)
    a = fmt.structure.assistant
    assert a.think == ThinkBlock("<think>\n", "\n</think>\n", False, True, "</think>\n")
    assert a.rule.after_nonempty == "\n" and a.final is None and a.prompt_only == "</think>"
    assert fmt.to_spec() == LAGUNA_XS_LIKE
    assert from_dict(fmt.to_dict()).structure == fmt.structure
    u, asst = "<user>\nq\n</user>\n", "<assistant>\n"
    assert fmt.render(msgs(("q", " a "))) == f"{u}{asst}</think>\na\n</assistant>\n"
    assert fmt.render(msgs(("q", " \n"))) == f"{u}{asst}</think>\n</assistant>\n"
    assert fmt.render(msgs(("q", "<think> r </think>\n"))) == f"{u}{asst}<think>\nr\n</think>\n</assistant>\n"
    assert fmt.render(msgs(("q", None)), add_generation_prompt=True) == f"{u}{asst}</think>"
    # the text after the answer trains with it; the block is its own (reasoning) segment
    segs = fmt.segments(msgs(("q", "a")))
    assert [(s.text, s.reasoning) for s in segs if s.trainable] == [
        ("</think>\n", True), ("a\n", False), ("</assistant>\n", False)]


def test_think_block_absent_one_value_per_meaning():
    assert ThinkBlock("<t>", "</t>", False, False, "<t></t>") == ThinkBlock("<t>", "</t>", True, False)
    assert ThinkBlock("<t>", "</t>", False, False, "") == ThinkBlock("<t>", "</t>")
    with pytest.raises(ValueError, match="not both"):
        ThinkBlock("<t>", "</t>", True, False, "x")
    # a hidden block renders its own text for every answer: no other text without reasoning
    assert ThinkBlock("<t>", "</t>", absent="<t></t>", hidden=True) == ThinkBlock("<t></t>", hidden=True)
    with pytest.raises(ValueError, match="no `absent` text of its own"):
        ThinkBlock("<t>", "</t>", absent="x", hidden=True)


GLM_LIKE = ("[gMASK]<sop>{SPLIT}<|system|>\n{SYSTEM}<|user|>\n{INPUT}{SPLIT}<|assistant|>{THINK|hidden}\n<think></think>"
            "{REASONING}{/THINK}{NONEMPTY}\n{/NONEMPTY}{OUTPUT|trim|drop_think}<|user|>\n{INPUT}{SPLIT}<|assistant|>"
            "{THINK|always}\n<think>{REASONING|trim}</think>{/THINK}{NONEMPTY}\n{/NONEMPTY}{OUTPUT|trim|drop_think}")


def test_hidden_think_block_and_text_before_nonempty_answers():
    """GLM-4.6: earlier answers render "\\n<think></think>" whatever their reasoning ({THINK|hidden}),
    the final one its reasoning; "\\n" goes before a non-blank answer only ({NONEMPTY} before {OUTPUT})."""
    fmt = tmplc.parse_spec(GLM_LIKE)
    a = fmt.structure.assistant
    assert a.think == ThinkBlock("\n<think></think>", "", True, False, None, True)
    assert a.rule.before_nonempty == "\n" and a.final.before_nonempty == "\n"
    assert a.final.think == ThinkBlock("\n<think>", "</think>", True, True)
    assert fmt.to_spec() == GLM_LIKE
    assert from_dict(fmt.to_dict()).structure == fmt.structure
    u, asst = "[gMASK]<sop><|user|>\nq", "<|assistant|>"
    conv = msgs(("q", "<think>r</think> a "), ("q2", "<think> r2 </think>\n\nb"))
    assert fmt.render(conv) == f"{u}{asst}\n<think></think>\na<|user|>\nq2{asst}\n<think>r2</think>\nb"
    assert fmt.render(msgs(("q", " "))) == f"{u}{asst}\n<think></think>"
    assert fmt.render(msgs(("q", "<think>r</think>"), ("q2", None)), add_generation_prompt=True) == \
        f"{u}{asst}\n<think></think><|user|>\nq2{asst}"
    # a hidden block's text written any way is the one value (the reasoning mark at its end)
    assert ThinkBlock("\n<think>", "</think>", hidden=True) == ThinkBlock("\n<think></think>", hidden=True)
