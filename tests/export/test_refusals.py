"""Planted disagreements are refused with their reason; nothing gets a final name; --force writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tmplc
from tmplc.cli import main
from tmplc.export import ExportRefused, ValidationFailed, export

from .conftest import need_engines, need_llama_cpp


@pytest.fixture(scope="module")
def planted(tiny, tmp_path_factory):
    """A Llama whose tokenizer pads with the end-of-turn token and whose <|eot_id|> row is untrained."""
    from safetensors.numpy import load_file, save_file

    need_llama_cpp()
    need_engines()
    model = tiny("planted", "llama", "llama3", template="llama-3", seed=1)
    cfg_path = model / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["pad_token"] = "<|eot_id|>"
    cfg_path.write_text(json.dumps(cfg))
    w = load_file(str(model / "model.safetensors"))
    w["model.embed_tokens.weight"][128009] = 0.0
    save_file(w, str(model / "model.safetensors"), metadata={"format": "pt"})
    return model


def _finals(out):
    return sorted(p.name for p in out.iterdir() if not p.name.startswith("."))


def test_pad_is_eos_and_untrained_end_of_turn_are_refused(planted, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValidationFailed) as ei:
        export(planted, None, out, outtypes="q8_0", logits=False, n_random=2)
    rep = ei.value.report
    doctor = rep.check("doctor")
    assert doctor.ok is False
    codes = {e["code"] for e in doctor.data["errors"]}
    assert codes & {"pad-is-eos", "pad-is-eot"} and codes & {"untrained-token", "untrained-tokens"}
    assert "<|eot_id|>" in doctor.detail
    assert _finals(out) == ["export-report.json"]  # no GGUF, no Modelfile under a final name
    saved = json.loads((out / "export-report.json").read_text())
    assert saved["refused"] is True and saved["ok"] is False and saved["files"] == {}


def test_force_writes_and_marks_the_report(planted, tmp_path):
    out = tmp_path / "out"
    rc = main(["export", str(planted), "--out", str(out), "--outtype", "q8_0", "--force", "--no-logits",
               "--name", "planted"])
    assert rc == 0
    saved = json.loads((out / "export-report.json").read_text())
    assert saved["forced"] is True and saved["ok"] is False and saved["refused"] is False
    assert set(saved["files"]) >= {"planted-Q8_0.gguf", "Modelfile"}
    assert any("--force" in n for n in saved["notes"])


def test_tokenizer_template_that_differs_from_the_format_is_refused(tiny, tmp_path, capsys):
    need_llama_cpp()
    need_engines()
    # the fixture's own Llama-3 template always appends the assistant header: not the llama-3 format
    model = tiny("fixture-template", "llama", "llama3")
    rc = main(["export", str(model), "--template", "llama-3", "--out", str(tmp_path), "--outtype", "f16",
               "--no-logits"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "hf_template" in err and "renders differently" in err
    assert _finals(tmp_path) == ["export-report.json"]


def test_unsupported_architecture_and_outtype(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPTNeoXForCausalLM"]}))
    with pytest.raises(ExportRefused, match="GPTNeoXForCausalLM"):
        from tmplc.export.architectures import plan_architecture

        plan_architecture(json.loads((tmp_path / "config.json").read_text()), {}, "config.json")
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "o"), "--outtype", "q3_k"]) == 2
    assert "unknown output type 'q3_k'" in capsys.readouterr().err


def test_format_without_a_single_end_of_turn_token_is_refused(tiny, tmp_path):
    need_llama_cpp()
    model = tiny("llama-chatml", "llama", "llama3", template="llama-3")
    with pytest.raises(ExportRefused, match="<\\|im_end\\|>"):
        export(model, tmplc.load("chatml"), tmp_path / "out", outtypes="f16", logits=False)
    assert not (tmp_path / "out").exists()  # refused before anything was written
