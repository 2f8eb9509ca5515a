"""`tmplc compile SPEC --to all --out DIR`: every target, a manifest with sha256, and files that
work where they go (the tokenizer_config fragment in transformers, the Modelfile in the Go engine)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

import tmplc
from tmplc.targets.ollama import modelfile_fields

from conftest import tokenizer_dir

CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"}]


def run_all(name, out):
    return subprocess.run([sys.executable, "-m", "tmplc.cli", "compile", name, "--to", "all", "--out", str(out)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("name", ["llama-3", "chatml", "gemma-3", "alpaca"])
def test_all_targets_and_manifest(name, tmp_path):
    res = run_all(name, tmp_path)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == name and not manifest["refused"]
    assert set(manifest["targets"]) == {"jinja", "ollama", "llamacpp", "spec", "json"}
    for files in manifest["targets"].values():
        for rel, digest in files.items():
            assert hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest() == digest
            assert f"{tmp_path}/{rel}" in res.stdout
    fmt = tmplc.load(name)
    assert (tmp_path / "chat_template.jinja").read_text() == fmt.to_jinja()
    assert tmplc.load(str(tmp_path / "spec.yaml")).structure == fmt.structure
    assert tmplc.parse_spec((tmp_path / "format.spec").read_text()).structure == fmt.structure
    assert modelfile_fields((tmp_path / "Modelfile").read_text())["template"]
    assert (tmp_path / "llama.cpp" / "chat_template.jinja").read_text() == fmt.to_llamacpp().chat_template
    if fmt.trims:
        assert "ollama" in manifest["caveats"] and "caveat" in res.stdout
    else:
        assert not manifest["caveats"]


def test_tokenizer_config_fragment_drives_transformers(tmp_path):
    """Merge the fragment into a real tokenizer's config: transformers renders the reference."""
    out = tmp_path / "out"
    assert run_all("llama-3", out).returncode == 0
    model = tmp_path / "model"
    shutil.copytree(tokenizer_dir("llama3"), model)
    cfg = json.loads((model / "tokenizer_config.json").read_text())
    cfg.update(json.loads((out / "tokenizer_config.json").read_text()))
    (model / "tokenizer_config.json").write_text(json.dumps(cfg))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model))
    fmt = tmplc.load("llama-3")
    assert tok.apply_chat_template(CONV, tokenize=False, add_generation_prompt=True) == \
        fmt.render(CONV, add_generation_prompt=True)
    # the end-of-turn token is the EOS generation stops at (not the base <|end_of_text|>)
    assert tok.eos_token == "<|eot_id|>" == fmt.eot_token


DATED = ("<|im_start|>system\nToday: {DATE=%s}\n{SYSTEM}<|im_end|>\n"
         + "<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT}<|im_end|>\n" * 2)


@pytest.mark.parametrize("date_fmt,refused", [
    ("%Y-%m-%d", set()),  # Ollama's currentDate
    ("%d %b %Y", {"ollama"}),  # Ollama has only YYYY-MM-DD
])
def test_dated_formats_record_refusals_with_the_format(date_fmt, refused, tmp_path):
    # (a time-of-day format is refused by the spec language itself: tests/test_spec.py)
    res = run_all(DATED % date_fmt, tmp_path)
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["refused"]) == refused
    assert set(manifest["targets"]) == {"jinja", "ollama", "llamacpp", "spec", "json"} - refused
    for target, reason in manifest["refused"].items():
        assert "{DATE=" + date_fmt + "}" in reason and f"{target:<9} refused: " in res.stdout
    if "ollama" in refused:
        assert "YYYY-MM-DD" in manifest["refused"]["ollama"] and not (tmp_path / "Modelfile").exists()
    else:
        assert "{{ currentDate }}" in modelfile_fields((tmp_path / "Modelfile").read_text())["template"]
    if "llamacpp" not in refused:
        assert "strftime_now(" in (tmp_path / "llama.cpp" / "chat_template.jinja").read_text()
    assert "strftime_now(" in (tmp_path / "chat_template.jinja").read_text()


def test_all_needs_a_directory():
    res = subprocess.run([sys.executable, "-m", "tmplc.cli", "compile", "chatml", "--to", "all"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--out DIR" in res.stderr
