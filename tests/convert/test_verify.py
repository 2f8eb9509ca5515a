"""`tmplc verify DEPLOYED --template SPEC` (issue 11.8): a Modelfile, a GGUF, a tokenizer folder,
a .jinja or a tmplc manifest, rendered by its own engine and compared with the spec; and
`tmplc identify` on tmplc's own Modelfile."""

from __future__ import annotations

import json

import pytest

from conftest import tokenizer_dir
from tmplc.cli import main

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module")
def llama3_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "llama-3"
    assert main(["compile", "llama-3", "--to", "all", "--out", str(out)]) == 0
    return out


def test_bundle_matches_its_spec(llama3_bundle, capsys):
    capsys.readouterr()
    assert main(["verify", str(llama3_bundle), "--template", "llama-3"]) == 0
    out = capsys.readouterr().out
    for f in ("manifest.json: 8 files, sha256s checked", "Modelfile: renders identically",
              "chat_template.jinja: renders identically", "llama.cpp/chat_template.jinja: renders identically",
              "format.json: the same layout"):
        assert f in out


def test_an_edited_bundle_file_fails_its_sha256(llama3_bundle, tmp_path, capsys):
    import shutil

    d = tmp_path / "b"
    shutil.copytree(llama3_bundle, d)
    mf = d / "Modelfile"
    mf.write_text(mf.read_text().replace("PARAMETER stop", "PARAMETER  stop"))
    capsys.readouterr()
    assert main(["verify", str(d / "manifest.json"), "--template", "llama-3"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0].endswith("does NOT match llama-3")
    assert f"{mf}: sha256" in err and "edited after tmplc wrote it" in err


def test_modelfile_against_another_spec_shows_the_conversation(llama3_bundle, capsys):
    capsys.readouterr()
    assert main(["verify", str(llama3_bundle / "Modelfile"), "--template", "chatml"]) == 1
    err = capsys.readouterr().err
    assert "differs on a conversation" in err and "messages: [" in err
    assert "expected: '<|im_start|>" in err and "deployed: '<|start_header_id|>" in err
    assert main(["verify", str(llama3_bundle / "Modelfile"), "--template", "llama-3"]) == 0


def _stop_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("PARAMETER stop ")]


def test_modelfile_with_a_stop_removed_or_added_is_a_difference(llama3_bundle, tmp_path, capsys):
    """The TEMPLATE alone renders identically, so only the PARAMETER stop lines can make these fail:
    a missing end-of-turn stop (generation runs on) and an extra stop are both differences."""
    text = (llama3_bundle / "Modelfile").read_text()
    stops = _stop_lines(text)
    assert stops, "tmplc's llama-3 Modelfile carries its end-of-turn as a stop"
    removed = stops[0].split(" ", 2)[2]
    missing = tmp_path / "missing" / "Modelfile"
    missing.parent.mkdir()
    missing.write_text(text.replace(stops[0] + "\n", ""))
    capsys.readouterr()
    assert main(["verify", str(missing), "--template", "llama-3"]) == 1
    out, err = capsys.readouterr()
    assert f"missing PARAMETER stop {removed!r}" in err and "extra" not in err
    assert f"{missing}: renders identically" in out  # only the stops differ

    extra = tmp_path / "extra" / "Modelfile"
    extra.parent.mkdir()
    extra.write_text(text.rstrip("\n") + "\nPARAMETER stop </s>\n")
    assert main(["verify", str(extra), "--template", "llama-3"]) == 1
    err = capsys.readouterr().err
    assert "extra PARAMETER stop '</s>'" in err and "missing" not in err

    same = tmp_path / "same" / "Modelfile"  # reordered stops and the same TEMPLATE: still a match
    same.parent.mkdir()
    body = "\n".join(ln for ln in text.splitlines() if ln not in stops)
    same.write_text(body + "\n" + "\n".join(reversed(stops)) + "\n")
    assert main(["verify", str(same), "--template", "llama-3"]) == 0
    assert "as the spec's" in capsys.readouterr().out


def test_real_tokenizer_folders():
    """The real Qwen3 template renders like qwen3-thinking; the real Llama 3 one always appends the
    assistant header (it ignores add_generation_prompt), which llama-3 does not."""
    assert main(["verify", str(tokenizer_dir("qwen3")), "--template", "qwen3-thinking"]) == 0
    assert main(["verify", str(tokenizer_dir("llama3")), "--template", "llama-3"]) == 1


def test_a_tokenizer_whose_bos_differs_is_a_difference(tmp_path, capsys):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"chat_template": "{{ bos_token }}" + CHATML, "bos_token": "<BOS>", "eos_token": "</s>"}))
    spec = "{BOS}" + "<|im_start|>user\n{INPUT}<|im_end|>\n<|im_start|>assistant\n{OUTPUT}<|im_end|>\n" * 2
    assert main(["verify", str(tmp_path), "--template", spec, "--bos-token", "<s>"]) == 1
    assert "the deployed bos_token is '<BOS>' but the spec's is '<s>'" in capsys.readouterr().err
    assert main(["verify", str(tmp_path), "--template", spec, "--bos-token", "<BOS>"]) == 0


def test_gguf(tmp_path):
    import gguf

    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<unk>", "<s>", "</s>", "<|im_end|>", "a"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(3)
    w.add_chat_template(CHATML)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert main(["verify", str(path), "--template", "chatml"]) == 0
    assert main(["verify", str(path), "--template", "llama-3"]) == 1


def test_identify_names_tmplcs_own_llama3_modelfile(llama3_bundle, capsys):
    capsys.readouterr()
    mf = llama3_bundle / "Modelfile"
    assert main(["identify", str(mf)]) == 0
    assert capsys.readouterr().out.startswith(f"tmplc: {mf} is equivalent to the registry entry 'llama-3'")


def test_verify_usage_errors(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope"), "--template", "chatml"]) == 2
    assert main(["verify", str(tmp_path), "--template", "chatml"]) == 2  # a folder without a template
