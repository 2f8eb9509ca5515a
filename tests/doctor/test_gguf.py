"""The doctor on GGUF files written with gguf-py's GGUFWriter from the real fixture vocabularies."""

from __future__ import annotations

import numpy as np
import pytest

import tmplc
from conftest import require_module, load_tokenizer
from doctor_models import built, model  # noqa: F401 - fixtures

gguf = require_module("gguf")


def random_rows(rows: int, hidden: int = 8, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((rows, hidden)) * 0.02).astype(np.float32)


def write_gguf(path, name: str, *, template: str | None, add_bos: bool | None, rows: int | None = None,
               pad: int | None = None, eot: int | None = None, eos: int | None = None, pre: str = "llama-bpe",
               normal: set[str] = frozenset(), embd=None, output=None, qtype=None):
    tok = load_tokenizer(name)
    n = len(tok)
    tokens = tok.convert_ids_to_tokens(list(range(n)))
    special = {a.content for a in tok.added_tokens_decoder.values() if a.special}
    types = [3 if t in special and t not in normal else 1 for t in tokens]
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if tok.bos_token is not None:
        w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id if eos is None else eos)
    if eot is not None:
        w.add_eot_token_id(eot)
    if pad is not None:
        w.add_pad_token_id(pad)
    if add_bos is not None:
        w.add_add_bos_token(add_bos)
    if template is not None:
        w.add_chat_template(template)
    embd = random_rows(rows or n) if embd is None else embd
    for tname, m in (("token_embd.weight", embd), ("output.weight", output)):
        if m is None:
            continue
        if qtype is None:
            w.add_tensor(tname, m)
        else:  # stored as gguf-py quantizes it (Q8_0 ..., BF16): the bytes llama.cpp would read
            from gguf.quants import quantize

            w.add_tensor(tname, quantize(m, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


LLAMA3_JINJA = tmplc.load("llama-3").to_jinja()


def test_gguf_add_bos_and_bos_template_is_double_bos(tmp_path):
    p = write_gguf(tmp_path / "a.gguf", "llama3", template=LLAMA3_JINJA, add_bos=True)
    r = tmplc.check(p)
    assert r.template == "llama-3" and r.template_source == "gguf chat_template"
    (f,) = r.by_code("double-bos")
    assert f.severity == "warning" and f.details["add_bos_key"] is True and f.details["bos_id"] == 128000
    assert "check_double_bos_eos" in f.message
    assert r.ok  # eot <|eot_id|> is on llama.cpp's EOG text list; every token is there


def test_gguf_add_bos_default_by_pre_tokenizer(tmp_path):
    # no add_bos key: llama-bpe adds BOS by default (double), qwen2 does not
    r = tmplc.check(write_gguf(tmp_path / "b.gguf", "llama3", template=LLAMA3_JINJA, add_bos=None))
    assert r.by_code("double-bos")[0].details["add_bos_key"] is None
    r = tmplc.check(write_gguf(tmp_path / "c.gguf", "llama3", template=LLAMA3_JINJA, add_bos=None, pre="qwen2"))
    assert "double-bos" not in r.codes()


def test_gguf_vocab_pad_and_token_types(tmp_path):
    p = write_gguf(tmp_path / "e.gguf", "llama3", template=LLAMA3_JINJA, add_bos=False, rows=128000,
                   pad=128009, normal={"<|start_header_id|>"})
    r = tmplc.check(p)
    (v,) = r.by_code("vocab-out-of-range")
    assert v.details == {"tokens": 128256, "rows": 128000}
    (pf,) = r.by_code("pad-is-eot")
    assert pf.details == {"pad_id": 128009, "eot_id": 128009}
    (t,) = r.by_code("template-token-missing")
    assert t.details["token"] == "<|start_header_id|>" and t.details["type"] == 1 and t.severity == "warning"


def test_gguf_eot_not_stop_and_mismatch(tmp_path):
    """A format whose end-of-turn token is neither eos/eot nor on llama.cpp's EOG text list never stops;
    with tokenizer.ggml.eot_token_id set it does."""
    spec = ("{BOS}<|reserved_special_token_1|>user: {INPUT}\nassistant: {OUTPUT}<|reserved_special_token_3|>"
            "<|reserved_special_token_1|>user: {INPUT}\nassistant: {OUTPUT}<|reserved_special_token_3|>")
    fmt = tmplc.parse_spec(spec, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
    p = write_gguf(tmp_path / "f.gguf", "llama3", template=fmt.to_jinja(), add_bos=False)
    r = tmplc.check(p)
    eot = load_tokenizer("llama3").convert_tokens_to_ids("<|reserved_special_token_3|>")
    (f,) = r.by_code("eot-not-stop")
    assert f.details["eot_id"] == eot and not r.ok
    p2 = write_gguf(tmp_path / "g.gguf", "llama3", template=fmt.to_jinja(), add_bos=False, eot=eot)
    assert "eot-not-stop" not in tmplc.check(p2).codes()
    r = tmplc.check(p2, template="llama-3")
    assert r.by_code("template-mismatch")[0].details["training_template"] == "llama-3"


def test_gguf_qwen3_clean(tmp_path):
    tok = load_tokenizer("qwen3")
    p = write_gguf(tmp_path / "q.gguf", "qwen3", template=tok.chat_template, add_bos=False, pre="qwen2")
    r = tmplc.check(p)
    assert r.ok and not r.findings, [f.message for f in r.findings]


def test_fast_header_reader_equals_gguf_py(tmp_path):
    """tmplc.gguf_container reads what gguf-py's GGUFReader reads (every value type, arrays, tensors)."""
    from tmplc.gguf_container import read_gguf

    p = tmp_path / "kv.gguf"
    w = gguf.GGUFWriter(str(p), arch="llama")
    w.add_token_list(["<s>", "</s>", "a", "é", "<|x|>"])
    w.add_token_types([3, 3, 1, 1, 4])
    w.add_token_scores([0.0, -1.5, 2.25, 3.0, 0.5])
    w.add_bos_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_uint8("t.u8", 7)
    w.add_int16("t.i16", -3)
    w.add_uint64("t.u64", 2**40)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", 0.125)
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_tensor("token_embd.weight", np.zeros((5, 4), dtype=np.float32))
    w.add_tensor("output_norm.weight", np.ones(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    f = read_gguf(p)
    kv, tensors = f.values(), {t.name: (t.shape, t.ggml_type) for t in f.tensors}
    r = gguf.GGUFReader(str(p))
    expected = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    assert kv == expected
    assert tensors == {t.name: (tuple(int(x) for x in t.shape), int(t.tensor_type)) for t in r.tensors}


def test_gguf_bad_file_is_bad_input(tmp_path):
    """One reader for the doctor and the exporter: a file that is not a GGUF is bad input (exit 2)."""
    from tmplc.cli import main
    from tmplc.gguf_container import GGUFError, read_gguf

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x05" * 10)  # truncated after the version
    with pytest.raises(GGUFError, match="truncated"):
        read_gguf(bad)
    assert main(["check", str(bad)]) == 2
    assert main(["gguf", "inspect", str(bad)]) == 2


LLAMA3_TURN = ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


def _llama3_base_rows(untied: bool):
    """Llama-3 base style: the turn tokens and reserved 10..29 zero in token_embd; in the untied output,
    the turn tokens share one random row (Llama-3.1 style) and the reserved rows are zero."""
    tok = load_tokenizer("llama3")
    n = len(tok)
    turn = [tok.convert_tokens_to_ids(t) for t in LLAMA3_TURN]
    reserved = [tok.convert_tokens_to_ids(f"<|reserved_special_token_{i}|>") for i in range(10, 30)]
    embd = random_rows(n, 32, seed=1)  # 32: one Q8_0/Q4_0 block per row
    embd[turn + reserved] = 0
    out = None
    if untied:
        out = random_rows(n, 32, seed=2)
        out[reserved] = 0
        out[turn] = random_rows(1, 32, seed=3)[0]
    return embd, out, turn, reserved


@pytest.mark.parametrize("qtype", [None, "F16", "BF16", "Q8_0", "Q4_0"])
def test_gguf_untrained_rows(tmp_path, qtype):
    """Planted zero / identical rows in token_embd and output are found in every stored type, with used_by
    the template for the turn tokens (an error: base model with an instruct template)."""
    q = None if qtype is None else gguf.GGMLQuantizationType[qtype]
    embd, out, turn, reserved = _llama3_base_rows(untied=True)
    p = write_gguf(tmp_path / "u.gguf", "llama3", template=LLAMA3_JINJA, add_bos=False, embd=embd, output=out,
                   qtype=q)
    r = tmplc.check(p)
    (f,) = r.by_code("untrained-tokens")
    assert f.severity == "error" and not r.ok
    assert set(f.details["ids"]) == set(turn + reserved)
    assert set(f.details["used"]) == set(turn)
    by_id = {e["id"]: e for e in f.details["tokens"]}
    for i in turn:
        assert by_id[i]["matrices"] == {"embedding": "zero", "lm_head": "duplicate"}
        assert by_id[i]["used_by"] == ["template"]
    for i in reserved:
        assert by_id[i]["matrices"] == {"embedding": "zero", "lm_head": "zero"} and by_id[i]["used_by"] == ["none"]
    assert "untrained-not-checked" not in r.codes()


@pytest.mark.parametrize("qtype", [None, "Q8_0"])
def test_gguf_mean_initialised_rows_are_trained(tmp_path, qtype):
    """Rows set to the mean of the trained rows (what tmplc fix writes before export) are not flagged, also
    after quantization; tied (no output.weight)."""
    q = None if qtype is None else gguf.GGMLQuantizationType[qtype]
    embd, _, turn, reserved = _llama3_base_rows(untied=False)
    bad = turn + reserved
    keep = np.ones(len(embd), dtype=bool)
    keep[bad] = False
    embd[bad] = embd[keep].astype(np.float64).mean(axis=0).astype(np.float32)
    p = write_gguf(tmp_path / "m.gguf", "llama3", template=LLAMA3_JINJA, add_bos=False, embd=embd, qtype=q)
    r = tmplc.check(p)
    assert "untrained-tokens" not in r.codes(), r.by_code("untrained-tokens")[0].message
    assert r.ok


def test_gguf_untrained_unused_is_info(tmp_path):
    """Zero rows the format does not use are an info finding (Qwen3 vocabulary, its own template)."""
    tok = load_tokenizer("qwen3")
    embd = random_rows(len(tok), seed=4)
    unused = [tok.convert_tokens_to_ids(t) for t in ("<|vision_start|>", "<|box_start|>")]
    embd[unused] = 0
    p = write_gguf(tmp_path / "q.gguf", "qwen3", template=tok.chat_template, add_bos=False, pre="qwen2", embd=embd)
    r = tmplc.check(p)
    (f,) = r.by_code("untrained-tokens")
    assert f.severity == "info" and f.details["ids"] == sorted(unused) and f.details["used"] == []
    assert r.ok


def test_gguf_type_gguf_py_cannot_dequantize_is_info(tmp_path):
    """Q8_1 rows (gguf-py has no dequantizer for it): the check says it could not look, it does not guess."""
    tok = load_tokenizer("llama3")
    q = gguf.GGMLQuantizationType.Q8_1
    block, size = gguf.GGML_QUANT_SIZES[q]
    raw = np.random.default_rng(5).integers(0, 255, (len(tok), 32 // block * size), dtype=np.uint8)
    p = tmp_path / "q81.gguf"
    w = gguf.GGUFWriter(str(p), arch="llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(tok.convert_ids_to_tokens(list(range(len(tok)))))
    w.add_bos_token_id(tok.bos_token_id)
    w.add_eos_token_id(tok.eos_token_id)
    w.add_add_bos_token(False)
    w.add_chat_template(LLAMA3_JINJA)
    w.add_tensor("token_embd.weight", raw, raw_dtype=q)  # byte shape: gguf-py derives (rows, 32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = tmplc.check(p)
    (f,) = r.by_code("untrained-not-checked")
    assert f.severity == "info" and "untrained-tokens" not in r.codes()
    assert len(f.details["skipped"]) == 1 and f.details["skipped"][0].startswith("token_embd.weight")
    assert "Q8_1" in f.details["skipped"][0]


@pytest.mark.parametrize("outtype", ["F16", "Q8_0"])
def test_gguf_from_tmplc_export_keeps_untrained_rows_visible(model, tmp_path, outtype):
    """A Llama-3-base-style tiny model exported by tmplc export (forced past its doctor refusal): the GGUF
    check finds the same zeroed rows, in the F16 and the Q8_0 file."""
    from doctor_models import EMBED, HEAD, set_rows

    tok = load_tokenizer("llama3")
    turn = [tok.convert_tokens_to_ids(t) for t in LLAMA3_TURN]
    m = model("llama3")
    set_rows(m, EMBED, {i: 0.0 for i in turn})
    set_rows(m, HEAD, {i: 0.0 for i in turn})
    out = tmp_path / "gguf"
    tmplc.export(m, "llama-3", out, outtypes=(outtype,), force=True, logits=False)
    (path,) = out.glob(f"*-{outtype}.gguf")
    r = tmplc.check(path)
    (f,) = r.by_code("untrained-tokens")
    assert f.severity == "error" and set(f.details["ids"]) == set(turn) == set(f.details["used"])
    assert {e["id"]: e["matrices"] for e in f.details["tokens"]} == {
        i: {"embedding": "zero", "lm_head": "zero"} for i in turn}
