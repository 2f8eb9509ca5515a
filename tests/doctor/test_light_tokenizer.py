"""The check's tokenizers-only tokenizer gives what transformers' AutoTokenizer gives (or is not used)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import load_tokenizer, tokenizer_dir
from tmplc.doctor.light_tokenizer import light_tokenizer
from tmplc.doctor.tokens import TokFacts

TEXTS = ["a", "Hello world", " leading space", "  two  spaces\n\n", "<|eot_id|>x",
         "<|im_start|>user\nÉté 1234\n<|im_end|>",
         "<start_of_turn>user\nhi<end_of_turn>\n", "<s>[INST] hi [/INST]", "<｜begin▁of▁sentence｜><｜User｜>hi",
         "ünïcödé 日本語 🙂", "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>",
         "<think>\n\n</think>\n\nok"]
FACTS = ("bos", "bos_id", "eos", "eos_id", "pad", "pad_id", "unk", "unk_id", "adds_bos", "added", "special", "size")


def _light(name: str, cfg_edit: dict | None = None, tmp: Path | None = None):
    d = tokenizer_dir(name)
    if cfg_edit:
        shutil.copytree(d, tmp / name)
        d = tmp / name
        cfg = json.loads((d / "tokenizer_config.json").read_text())
        cfg.update(cfg_edit)
        (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    return light_tokenizer(d, json.loads((d / "tokenizer_config.json").read_text())), d


@pytest.mark.parametrize("name", ["llama3", "qwen3"])
def test_light_equals_transformers(name):
    light, _ = _light(name)
    assert light is not None
    hf = load_tokenizer(name)
    fl, fh = TokFacts.of(light), TokFacts.of(hf)
    for k in FACTS:
        assert getattr(fl, k) == getattr(fh, k), k
    for t in TEXTS:
        for sp in (False, True):
            assert light(t, add_special_tokens=sp)["input_ids"] == hf(t, add_special_tokens=sp)["input_ids"], (t, sp)
        assert fl.single_id(t) == fh.single_id(t), t
    for i in list(range(0, len(hf), 997)) + [len(hf) - 1]:
        assert light.convert_ids_to_tokens(i) == hf.convert_ids_to_tokens(i)
        assert light.decode([i]) == hf.decode([i]), i


@pytest.mark.parametrize("name", ["llama2", "gemma3", "deepseek_v3"])
def test_light_not_used_where_transformers_differs(name):
    """Llama (transformers 5 rebuilds the pre-tokenizer: ' leading space' tokenizes differently) and Gemma
    (its class declares <mask> special) tokenizers are loaded by transformers; the light one would differ."""
    light, _ = _light(name)
    assert light is None


def test_light_not_used_when_bos_flag_disagrees(tmp_path):
    """add_bos_token true in tokenizer_config but tokenizer.json's post-processor adds none (Qwen3): only
    transformers knows what the tokenizer really does."""
    light, _ = _light("qwen3", {"add_bos_token": True, "bos_token": "<|endoftext|>"}, tmp_path)
    assert light is None


def test_check_without_data_imports_no_transformers(tmp_path):
    d = tmp_path / "tok"
    shutil.copytree(tokenizer_dir("llama3"), d)
    code = ("import sys, tmplc; r = tmplc.check(sys.argv[1], template='llama-3'); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules), r.ok)")
    env = dict(os.environ, PYTHONPATH=str(Path(tmplc_src()).resolve()))
    out = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["[]", "True"], out.stdout + out.stderr


def tmplc_src() -> str:
    import tmplc

    return str(Path(tmplc.__file__).parent.parent)
