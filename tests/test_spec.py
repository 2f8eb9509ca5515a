"""The spec language: structure recovery on the forms the issue names, and every error kind."""

from __future__ import annotations

import pytest

import tmplc
from tmplc import SpecError
from tmplc.ir import SpecialToken, Text

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
    ("U: {INPUT=x}\nA: {OUTPUT}\n", 1, 4, "only {SYSTEM} and {PROMPT} take a default"),
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
    ("U: {INPUT}\nA: {OUTPUT}\n{SPLIT}U: {INPUT}\nA: {OUTPUT}\n", 3, 1, "cannot go here"),
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
