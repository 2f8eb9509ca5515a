"""``tmplc.fix``: every repair checked numerically (the trained mean recomputed here, from the old
weights and the planted ids), by re-checking the new folder, and by a transformers forward pass."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import tmplc
from conftest import load_tokenizer
from doctor_models import EMBED, HEAD, built, edit_json, model, set_rows  # noqa: F401 - fixtures


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def expected_mean(w: torch.Tensor, untrained: set[int]) -> torch.Tensor:
    keep = torch.tensor([i not in untrained for i in range(w.shape[0])])
    return w[keep].double().mean(dim=0).to(w.dtype)


def assert_rows(old: torch.Tensor, new: torch.Tensor, untrained: set[int]) -> None:
    mean = expected_mean(old, untrained)
    for i in untrained:
        assert torch.equal(new[i], mean), i
    # not the plain mean over all rows (zeros included): the bug this fix avoids
    assert not torch.equal(mean, old.double().mean(dim=0).to(old.dtype))
    keep = torch.tensor([i not in untrained for i in range(old.shape[0])])
    assert torch.equal(new[: old.shape[0]][keep], old[keep])  # trained rows byte-identical


def forward_is_finite(folder, text: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    m = AutoModelForCausalLM.from_pretrained(str(folder))
    batch = tok([text, "hi"], padding=True, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = m(**batch).logits
    assert torch.isfinite(logits).all()
    assert logits.shape[-1] == m.get_input_embeddings().weight.shape[0]


def test_fix_llama3_base_untied(model, tmp_path):
    m = model("llama3")
    tok = load_tokenizer("llama3")
    turn = [tok.convert_tokens_to_ids(t) for t in ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                                                    "<|reserved_special_token_7|>")]
    set_rows(m, EMBED, {i: 0.0 for i in turn})
    set_rows(m, HEAD, {i: 0.0 for i in turn[:3]})
    edit_json(m / "generation_config.json", eos_token_id=128001)
    before = tmplc.check(m, template="llama-3", tokenizer=tok)
    assert {"untrained-tokens", "eot-not-stop", "pad-missing"} <= before.codes()
    out = tmp_path / "fixed"
    r = tmplc.fix(m, out, template="llama-3")
    assert r.ok and not r.codes() & {"untrained-tokens", "eot-not-stop", "pad-missing", "template-unimportable"}, \
        [f.message for f in r.findings]
    old, new = weights(m), weights(out)
    assert_rows(old[EMBED], new[EMBED], set(turn))
    assert_rows(old[HEAD], new[HEAD], set(turn[:3]))
    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [128001, 128009]
    tcfg = json.loads((out / "tokenizer_config.json").read_text())
    pad = tcfg["pad_token"]
    assert pad.startswith("<|reserved_special_token_") and pad != "<|reserved_special_token_7|>"
    assert json.loads((out / "config.json").read_text())["pad_token_id"] == tok.convert_tokens_to_ids(pad)
    assert (out / "chat_template.jinja").read_text() == tmplc.load("llama-3").to_jinja() == tcfg["chat_template"]
    rep = json.loads((out / "tmplc-fix-report.json").read_text())
    codes = [c["code"] for c in rep["changes"]]
    assert {"pad", "untrained-tokens", "eot-not-stop", "chat_template"} <= set(codes)
    emb = next(c for c in rep["changes"] if c["code"] == "untrained-tokens" and c["matrix"] == "embedding")
    assert emb["ids"] == sorted(turn)
    assert not rep["after"]["findings"] or rep["after"]["ok"]
    text = tmplc.load("llama-3").render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}])
    forward_is_finite(out, text)
    assert sorted(p.name for p in m.iterdir()) == sorted(p.name for p in out.iterdir()
                                                        if p.name not in ("tmplc-fix-report.json", "chat_template.jinja"))


def test_fix_pad_is_eot_qwen3(model, tmp_path):
    m = model("qwen3")
    edit_json(m / "tokenizer_config.json", pad_token="<|im_end|>")
    edit_json(m / "config.json", pad_token_id=151645)
    out = tmp_path / "fixed"
    r = tmplc.fix(m, out)
    assert not r.codes() & {"pad-is-eot", "pad-is-eos"} and r.ok
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == 151643
    assert json.loads((out / "config.json").read_text())["pad_token_id"] == 151643
    assert torch.equal(weights(m)[EMBED], weights(out)[EMBED])  # no weight touched


def test_fix_pad_llama2_is_unk(model, tmp_path):
    """Llama-2's vocabulary has no reserved or pad token: its unk is the pad (as Unsloth picks)."""
    m = model("llama2", tied=True)
    r = tmplc.fix(m, tmp_path / "fixed", template="llama-2", tokenizer=load_tokenizer("llama2"))
    assert "pad-missing" not in r.codes()
    assert json.loads((tmp_path / "fixed" / "tokenizer_config.json").read_text())["pad_token"] == "<unk>"
    assert json.loads((tmp_path / "fixed" / "config.json").read_text())["pad_token_id"] == 0


def test_fix_new_pad_token_resizes_tied_llama2(model, tmp_path):
    """A pad text that is not in the vocabulary: a new special token, the embedding resized."""
    m = model("llama2", tied=True)
    out = tmp_path / "fixed"
    r = tmplc.fix(m, out, template="llama-2", pad_token="<|pad|>")
    assert "pad-missing" not in r.codes() and r.ok, [f.message for f in r.findings]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id == 32000
    assert tok("a <|pad|>", add_special_tokens=False)["input_ids"][-1] == 32000
    old, new = weights(m)[EMBED], weights(out)[EMBED]
    assert new.shape == (32001, old.shape[1]) and "lm_head.weight" not in weights(out)
    assert torch.equal(new[:32000], old)
    assert torch.equal(new[32000], old.double().mean(dim=0).to(old.dtype))  # every old row is trained here
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 32001
    forward_is_finite(out, "<s>[INST] hi [/INST] yo </s>")


def test_fix_vocab_out_of_range(model, tmp_path):
    from transformers import AutoTokenizer

    m = model("llama2", tied=True)
    tok = AutoTokenizer.from_pretrained(str(m))
    tok.add_special_tokens({"additional_special_tokens": ["<sep>"]})
    tok.save_pretrained(str(m))
    r = tmplc.fix(m, tmp_path / "fixed", template="llama-2")
    assert "vocab-out-of-range" not in r.codes()
    new = weights(tmp_path / "fixed")[EMBED]
    assert new.shape[0] >= 32001
    forward_is_finite(tmp_path / "fixed", "<s>[INST] a <sep> b [/INST] c </s>")


def test_fix_shadowed_template(model, tmp_path):
    m = model("qwen3")
    (m / "chat_template.jinja").write_text(tmplc.load("chatml").to_jinja(), encoding="utf-8")
    r = tmplc.fix(m, tmp_path / "fixed", tokenizer=load_tokenizer("qwen3"))
    assert "template-shadowed" not in r.codes()
    out = tmp_path / "fixed"
    assert json.loads((out / "tokenizer_config.json").read_text())["chat_template"] == \
        (out / "chat_template.jinja").read_text() == tmplc.load("chatml").to_jinja()


def test_fix_double_bos_in_text_rows(model, tmp_path):
    m = model("llama2", tied=True)
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"text": "<s>[INST] hi [/INST] ok </s>"}) + "\n", encoding="utf-8")
    r = tmplc.fix(m, tmp_path / "fixed", template="llama-2", data=data)
    assert not [f for f in r.by_code("double-bos") if f.severity == "error"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "fixed"))
    assert tok("<s>a")["input_ids"].count(tok.bos_token_id) == 1
    rep = json.loads((tmp_path / "fixed" / "tmplc-fix-report.json").read_text())
    assert any(c["code"] == "double-bos" and c["source"] == "tokenizer flag" for c in rep["changes"])


def test_fix_refuses_in_place_and_non_empty(model, tmp_path):
    from tmplc.doctor import DoctorInputError

    m = model("llama2", tied=True)
    with pytest.raises(DoctorInputError):
        tmplc.fix(m, m, template="llama-2")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(DoctorInputError, match="not empty"):
        tmplc.fix(m, tmp_path / "busy", template="llama-2")


@pytest.mark.parametrize("name,tied", [("llama2", True), ("llama3", False)])
def test_fix_adds_missing_format_tokens(model, tmp_path, name, tied):
    """ChatML on a vocabulary without <|im_start|>/<|im_end|>: fix adds both as special tokens, resizes the
    embedding (and the untied lm_head) with trained-mean rows, makes <|im_end|> a stop id; the re-check is clean
    of those findings and transformers tokenizes each string to its one new id."""
    from transformers import AutoTokenizer

    m = model(name, tied=tied)
    before = tmplc.check(m, template="chatml")
    assert {"eot-not-single-token", "template-token-missing"} <= before.codes()
    n_old = len(load_tokenizer(name))
    out = tmp_path / "fixed"
    r = tmplc.fix(m, out, template="chatml")
    assert r.ok and not ({"eot-not-single-token", "template-token-missing", "eot-not-stop"} & r.codes()), \
        [f.message for f in r.findings]
    tok = AutoTokenizer.from_pretrained(str(out))
    ids = {t: tok(t, add_special_tokens=False)["input_ids"] for t in ("<|im_start|>", "<|im_end|>")}
    assert sorted(v[0] for v in ids.values()) == [n_old, n_old + 1] and all(len(v) == 1 for v in ids.values())
    text = "<|im_start|>user\nhi<|im_end|>\n"
    assert tok(text, add_special_tokens=False)["input_ids"][:1] == ids["<|im_start|>"]
    old, new = weights(m), weights(out)
    assert "untrained-tokens" not in before.codes()  # random weights: every old row counts as trained
    for key in ([EMBED] if tied else [EMBED, HEAD]):
        o, w = old[key], new[key]
        assert w.shape == (n_old + 2, o.shape[1]), key
        assert torch.equal(w[:n_old], o), key
        mean = expected_mean(o, set())
        assert torch.equal(w[n_old], mean) and torch.equal(w[n_old + 1], mean), key
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["vocab_size"] == n_old + 2
    gen = json.loads((out / "generation_config.json").read_text())
    assert ids["<|im_end|>"][0] in gen["eos_token_id"]
    rep = json.loads((out / "tmplc-fix-report.json").read_text())
    added = {c["token"]: c["new_id"] for c in rep["changes"] if c["code"] in ("eot-not-single-token",
                                                                              "template-token-missing")}
    assert added == {t: v[0] for t, v in ids.items()}
    assert not any(n["code"] in ("eot-not-single-token", "template-token-missing") for n in rep["not_fixed"])
    forward_is_finite(out, text)


def test_fix_refuses_a_vocabulary_string_that_does_not_tokenize_to_itself(tmp_path):
    """A format's end-of-turn '<|tmplc_end|>' that is an entry of the BPE vocabulary but never produced by
    tokenizing (no merges lead to it): fix does not turn a trained id into a special token; it says why."""
    from conftest import tokenizer_dir

    src = tmp_path / "tok"
    import shutil

    shutil.copytree(tokenizer_dir("llama3"), src)
    tj = json.loads((src / "tokenizer.json").read_text())
    tj["model"]["vocab"]["<|tmplc_end|>"] = 128256
    (src / "tokenizer.json").write_text(json.dumps(tj))
    turn = ("<|start_header_id|>user<|end_header_id|>\n\n{INPUT}<|tmplc_end|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n{OUTPUT}<|tmplc_end|>")
    spec = "{BOS}" + turn + turn
    fmt = tmplc.parse_spec(spec, bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
    before = tmplc.check(src, template=fmt)
    assert before.by_code("eot-not-single-token")[0].details["token"] == "<|tmplc_end|>"
    r = tmplc.fix(src, tmp_path / "out", template=fmt)
    assert "eot-not-single-token" in r.codes()
    (nf,) = [n for n in r.not_fixed if n["code"] == "eot-not-single-token"]
    assert nf["token"] == "<|tmplc_end|>" and nf["id"] == 128256 and "does not tokenize to it" in nf["why"]
    added = json.loads((tmp_path / "out" / "tokenizer.json").read_text())["added_tokens"]
    assert not any(a["content"] == "<|tmplc_end|>" for a in added)
