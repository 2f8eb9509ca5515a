"""The tmplc command line, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tmplc


def tmplc_cli(*args, input=None):
    return subprocess.run([sys.executable, "-m", "tmplc.cli", *args], capture_output=True, text=True, input=input)


CONV = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi\n"},
        {"role": "assistant", "content": " Hello! "}]


def test_help_for_every_command():
    res = tmplc_cli("--help")
    assert res.returncode == 0
    from tmplc.cli import _commands

    for cmd in _commands():
        assert cmd in res.stdout
        sub = tmplc_cli(cmd, "--help")
        assert sub.returncode == 0 and "usage: tmplc " + cmd in sub.stdout


def test_list_shows_names_aliases_descriptions():
    res = tmplc_cli("list")
    assert res.returncode == 0
    for name in tmplc.registry:
        fmt = tmplc.registry[name]
        assert name in res.stdout and fmt.meta.description in res.stdout
    names = tmplc_cli("list", "--names").stdout.split()
    assert names == list(tmplc.registry)


@pytest.mark.parametrize("target", ["jinja", "spec", "yaml", "json"])
def test_compile_targets(target, tmp_path):
    res = tmplc_cli("compile", "chatml", "--to", target)
    assert res.returncode == 0, res.stderr
    fmt = tmplc.load("chatml")
    if target == "jinja":
        assert res.stdout == fmt.to_jinja()
    elif target == "spec":
        assert tmplc.parse_spec(res.stdout).structure == fmt.structure
    elif target == "yaml":
        p = tmp_path / "x.yaml"
        p.write_text(res.stdout)
        assert tmplc.load(str(p)).structure == fmt.structure
    else:
        from tmplc.targets.json_ir import from_dict

        assert from_dict(json.loads(res.stdout)).structure == fmt.structure
    out = tmp_path / "out.txt"
    assert tmplc_cli("compile", "chatml", "--to", target, "--out", str(out)).returncode == 0
    assert out.read_text() == res.stdout


def test_render_prints_exactly_the_text(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(CONV))
    fmt = tmplc.load("chatml")
    res = tmplc_cli("render", "chatml", "--messages", str(p))
    assert res.returncode == 0 and res.stdout == fmt.render(CONV)
    res = tmplc_cli("render", "chatml", "--messages", str(p), "--add-generation-prompt")
    assert res.stdout == fmt.render(CONV, add_generation_prompt=True)
    jl = tmp_path / "m.jsonl"
    jl.write_text(json.dumps(CONV) + "\n" + json.dumps({"messages": CONV[1:]}) + "\n")
    res = tmplc_cli("render", "chatml", "--messages", str(jl))
    assert res.stdout == fmt.render(CONV) + fmt.render(CONV[1:])


def test_render_show_marks_trainable_segments(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps(CONV))
    res = tmplc_cli("render", "chatml", "--messages", str(p), "--show", "--plain")
    assert res.returncode == 0
    assert res.stdout.endswith("<|im_start|>assistant\n[[ Hello! ]][[<|im_end|>\n]]")


def test_spec_error_is_file_line_col_and_exit_2(tmp_path):
    p = tmp_path / "bad.spec"
    p.write_text("U: {INPUT}\nA: {OUTPUT}\nU: {INPUT}\nB: {OUTPUT}\n")
    res = tmplc_cli("compile", str(p))
    assert res.returncode == 2
    assert res.stderr.startswith(f"{p}:4:1: error: the repetitions differ")
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines()[1].strip() == "B: {OUTPUT}"
    assert res.stderr.splitlines()[2] == "    ^"


def test_bad_messages_and_unknown_names_exit_2(tmp_path):
    p = tmp_path / "m.json"
    p.write_text(json.dumps([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]))
    res = tmplc_cli("render", "chatml", "--messages", str(p))
    assert res.returncode == 2 and "message 1: unknown role 'robot'" in res.stderr and "Traceback" not in res.stderr
    res = tmplc_cli("compile", "chatmll")
    assert res.returncode == 2 and "did you mean" in res.stderr and "chatml" in res.stderr
    p.write_text("[{]")
    res = tmplc_cli("render", "chatml", "--messages", str(p))
    assert res.returncode == 2 and f"{p}:1:" in res.stderr and "Traceback" not in res.stderr


def test_spec_text_on_the_command_line():
    res = tmplc_cli("compile", "Q: {INPUT}\nA: {OUTPUT}\nQ: {INPUT}\nA: {OUTPUT}\n", "--to", "spec")
    assert res.returncode == 0 and res.stdout == "Q: {INPUT}\nA: {OUTPUT}\nQ: {INPUT}\nA: {OUTPUT}\n"


def test_one_refusal_type_with_its_exit_code():
    """Both targets raise the one TargetError (target, reason); the CLI exits by the error's type."""
    import tmplc.targets.llamacpp as llamacpp_target
    import tmplc.targets.ollama as ollama_target
    from tmplc.errors import ModelfileSyntaxError, TargetError

    assert ollama_target.TargetError is llamacpp_target.TargetError is TargetError
    with pytest.raises(TargetError) as e:
        tmplc.load("qwen3-thinking").to_ollama()
    assert e.value.target == "ollama" and "drop_think" in e.value.reason and str(e.value) == e.value.reason
    with pytest.raises(ModelfileSyntaxError):
        ollama_target.parse_modelfile("SYSTEM x\n")
    res = tmplc_cli("compile", "qwen3-thinking", "--to", "ollama")
    assert res.returncode == 3 and "Traceback" not in res.stderr
    assert "refused: the ollama target" in res.stderr and "drop_think" in res.stderr


def test_ollama_default_for_trimmed_formats(capsys):
    """Formats whose contents are trimmed get a Modelfile by default (caveat on stderr and in the
    Modelfile); --strict keeps the refusal (exit 3)."""
    from tmplc.cli import main
    from tmplc.targets.ollama import modelfile_fields

    trimmed = [n for n in tmplc.registry if tmplc.registry[n].trims]
    assert {"llama-3", "llama-3.1", "gemma", "llama-2", "mistral-v3", "command-r"} <= set(trimmed)
    for name in trimmed:
        rc = main(["compile", name, "--to", "ollama"])
        out, err = capsys.readouterr()
        if rc == 3:  # refused for another reason (an answer rule), never for the trim
            assert "strips" not in err.split("refused:")[1], (name, err)
            continue
        assert rc == 0, (name, err)
        assert "tmplc: caveat: format" in err and "contents as sent" in err and "--strict" in err
        assert "NOTE: this format strips" in out and modelfile_fields(out)["template"]
        assert main(["compile", name, "--to", "ollama", "--strict"]) == 3
        err = capsys.readouterr().err
        assert "refused: the ollama target" in err and "strips" in err and "caveat: format" not in err
    # an untrimmed format: no caveat, the same Modelfile either way
    assert main(["compile", "chatml", "--to", "ollama"]) == 0
    plain, err = capsys.readouterr()
    assert "caveat" not in err
    assert main(["compile", "chatml", "--to", "ollama", "--strict"]) == 0 and capsys.readouterr().out == plain


def test_to_yaml_writes_the_registry_block_style(tmp_path):
    """Issue 11.10: `--to yaml` writes `spec: |-` (an editable block), exactly as the registry
    file; the chomping indicator keeps the final newlines ('|' one, '|+' more)."""
    import yaml

    from tmplc import registry
    from tmplc.api import load
    from tmplc.cli import main

    out = tmp_path / "l3.yaml"
    assert main(["compile", "llama-3", "--to", "yaml", "--out", str(out)]) == 0
    text = out.read_text()
    assert "\nspec: |-\n  {BOS}<|start_header_id|>system<|end_header_id|>\n\n  {SYSTEM|trim}" in text
    assert load(str(out)).structure == registry["llama-3"].structure
    for tail, indicator in (("\n", "|\n"), ("\n\n", "|+\n")):
        spec = f" U: {{INPUT}}\nA: {{OUTPUT}}{tail} U: {{INPUT}}\nA: {{OUTPUT}}{tail}"
        p = tmp_path / "s.spec"
        p.write_text(spec)
        assert main(["compile", str(p), "--to", "yaml", "--out", str(out)]) == 0
        text = out.read_text()
        assert f"spec: {indicator[0]}2{indicator[1:]}" in text  # leading space: indentation indicator
        assert yaml.safe_load(text)["spec"] == spec
