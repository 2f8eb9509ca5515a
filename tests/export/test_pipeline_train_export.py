"""The whole flow on one tiny model: format -> check -> train -> export -> verify.

A tiny random Llama with the real Llama-3 tokenizer is trained for a few steps by ``tmplc train``;
``tmplc export`` reads the trainer's folder (its adapter and its recorded ``tmplc.yaml``, no
--template given), merges the adapter and validates the GGUF with llama.cpp; ``tmplc verify``
then checks the deployed Modelfile and GGUF against the recorded training format.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))

from train_fixtures import conversations, tiny_model, write_jsonl  # noqa: E402

from tmplc.cli import main  # noqa: E402


def test_format_check_train_export_verify(tmp_path, llama_cpp, capsys):
    model = tiny_model(tmp_path, "llama3")
    data = write_jsonl(tmp_path / "data.jsonl", conversations(12))

    assert main(["format", str(data), "--template", "llama-3", "--tokenizer", str(model),
                 "--out", str(tmp_path / "train.parquet")]) == 0
    assert main(["check", str(model), "--template", "llama-3", "--data", str(data)]) == 0

    run = tmp_path / "run"
    assert main(["train", "--model", str(model), "--data", str(data), "--template", "llama-3",
                 "--out", str(run), "--max-steps", "3", "--max-seq-length", "128",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert (run / "tmplc.yaml").is_file() and (run / "adapter_model.safetensors").is_file()

    gguf_dir = tmp_path / "gguf"
    capsys.readouterr()
    assert main(["export", str(model), "--adapter", str(run), "--out", str(gguf_dir),
                 "--outtype", "f16"]) == 0, capsys.readouterr()
    report = json.loads((gguf_dir / "export-report.json").read_text())
    assert "tmplc.yaml" in report["spec_source"], report["spec_source"]
    assert all(c["ok"] is not False for c in report["checks"]), report["checks"]
    ggufs = sorted(gguf_dir.glob("*.gguf"))
    assert len(ggufs) == 1 and (gguf_dir / "Modelfile").is_file()

    for deployed in (gguf_dir / "Modelfile", ggufs[0]):
        assert main(["verify", str(deployed), "--template", str(run / "tmplc.yaml")]) == 0, deployed
    # and a different format is told apart
    assert main(["verify", str(ggufs[0]), "--template", "chatml"]) == 1
