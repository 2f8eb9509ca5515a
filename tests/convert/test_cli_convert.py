"""`tmplc convert` and `tmplc identify`."""

from __future__ import annotations

import json

from tmplc.cli import main

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _cfg(tmp_path, template):
    p = tmp_path / "tokenizer_config.json"
    p.write_text(json.dumps({"chat_template": template, "eos_token": "<|im_end|>"}))
    return p


def test_convert_to_spec_and_identify(tmp_path, capsys):
    p = _cfg(tmp_path, CHATML)
    assert main(["convert", str(p), "--to", "spec"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("<|im_start|>system\n{SYSTEM}<|im_end|>\n")
    assert "chatml" in out.err
    assert main(["identify", str(p)]) == 0
    assert capsys.readouterr().out.strip() == f"tmplc: {p} is equivalent to the registry entry 'chatml'"  # as README


def test_convert_refusal_exits_3_with_the_reason(tmp_path, capsys):
    p = _cfg(tmp_path, "{{ strftime_now('week %W') }}" + CHATML)
    assert main(["convert", str(p), "--to", "jinja"]) == 3
    assert "injects today's date" in capsys.readouterr().err
    assert main(["identify", str(p)]) == 3


def test_convert_var_and_out(tmp_path, capsys):
    t = ("{% if d is not defined %}{% set d = strftime_now('%Y') %}{% endif %}"
         "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'user' %}{{ d }} {% endif %}{{ m.content }}<|im_end|>\n{% endfor %}"
         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    p = _cfg(tmp_path, t)
    out = tmp_path / "t.jinja"
    assert main(["convert", str(p), "--to", "jinja", "--var", 'd="2024"', "--out", str(out)]) == 0
    assert "2024 " in out.read_text()


def test_convert_all(tmp_path, capsys):
    p = _cfg(tmp_path, CHATML)
    d = tmp_path / "out"
    rc = main(["convert", str(p), "--to", "all", "--out", str(d)])
    assert rc == 0
    # the same folder as `tmplc compile --to all`: every target, and a manifest with the sha256s
    manifest = json.loads((d / "manifest.json").read_text())
    assert (d / "chat_template.jinja").is_file() and (d / "spec.yaml").is_file() and (d / "Modelfile").is_file()
    assert set(manifest["targets"]) == {"jinja", "ollama", "llamacpp", "spec", "json"}


def test_identify_no_match(tmp_path, capsys):
    p = _cfg(tmp_path, "{% for m in messages %}#{{ m.role }}: {{ m.content }}\n{% endfor %}"
                       "{% if add_generation_prompt %}#assistant: {% endif %}")
    assert main(["identify", str(p)]) == 1
    assert "no registry entry" in capsys.readouterr().out
