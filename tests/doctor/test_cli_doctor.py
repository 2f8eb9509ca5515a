"""``tmplc check`` / ``tmplc fix`` as real subprocesses: table, --json, exit codes 0/1/2."""

from __future__ import annotations

import json
import subprocess
import sys

from doctor_models import built, edit_json, model  # noqa: F401 - fixtures


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tmplc.cli", *map(str, args)], capture_output=True, text=True)


def test_check_clean_table_exit_0(model):
    res = cli("check", model("qwen3"))
    assert res.returncode == 0, res.stderr
    assert "template: qwen3-tools (tokenizer chat_template)" in res.stdout  # with its tool part
    assert "0 error(s)" in res.stdout and "Traceback" not in res.stderr


def test_check_json_exit_1_then_fix_exit_0(model, tmp_path):
    m = model("llama3")
    edit_json(m / "generation_config.json", eos_token_id=128001)
    res = cli("check", m, "--template", "llama-3", "--json")
    assert res.returncode == 1, res.stderr
    data = json.loads(res.stdout)
    assert data["path"] == str(m) and data["template"] == "llama-3" and data["ok"] is False
    (f,) = [f for f in data["findings"] if f["code"] == "eot-not-stop"]
    assert set(f) >= {"code", "severity", "message", "fix", "details"} and f["details"]["eot_id"] == 128009
    res = cli("check", m, "--template", "llama-3")
    assert res.returncode == 1 and "ERROR   eot-not-stop" in res.stdout
    out = tmp_path / "fixed"
    res = cli("fix", m, "--out", out, "--template", "llama-3")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "changed eot-not-stop" in res.stdout and (out / "tmplc-fix-report.json").is_file()
    assert cli("check", out, "-t", "llama-3").returncode == 0


def test_bad_input_exit_2(tmp_path):
    res = cli("check", tmp_path / "missing")
    assert res.returncode == 2 and "no such file or folder" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "empty").mkdir()
    res = cli("check", tmp_path / "empty")
    assert res.returncode == 2 and "no tokenizer.json" in res.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    res = cli("check", bad)
    assert res.returncode == 2 and "not a readable GGUF" in res.stderr
