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


def test_convert_imports_the_tool_part_and_says_so(tmp_path, capsys):
    """A real tokenizer folder whose template uses tools (the Qwen3 fixture): `tmplc convert` recovers
    the tool part, says "tools: exact" on stderr, and the written format renders tool conversations
    like the real template through transformers; --text-only imports the text part alone."""
    from conftest import load_tokenizer, tokenizer_dir

    from tmplc.spec.files import load_spec_file as load_format_file

    src = tokenizer_dir("qwen3")
    out = tmp_path / "q.yaml"
    assert main(["convert", str(src), "--to", "yaml", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"tmplc: {src}: tools: exact" in err and "'qwen3-tools'" in err, err
    fmt = load_format_file(out)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                               "parameters": {"type": "object", "properties": {"city": {
                                                   "type": "string"}}}}}]
    msgs = [{"role": "user", "content": "Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "content": "21"}, {"role": "assistant", "content": "21 °C."}]
    tok = load_tokenizer("qwen3")
    assert fmt.render(msgs, tools=tools) == tok.apply_chat_template(msgs, tools=tools, tokenize=False)
    assert main(["convert", str(src), "--to", "yaml", "--text-only", "--out", str(tmp_path / "t.yaml")]) == 0
    err = capsys.readouterr().err
    assert "tools:" not in err
    assert load_format_file(tmp_path / "t.yaml").structure.tools is None
    # the spec text (the default target) holds the text part only: it says so, never dropped silently
    assert main(["convert", str(src), "--out", str(tmp_path / "q.spec")]) == 0
    err = capsys.readouterr().err
    assert "the spec text (--to spec, the default) holds the text format only" in err, err
    assert "{TOOL" not in (tmp_path / "q.spec").read_text(encoding="utf-8")
    assert main(["convert", str(src), "--text-only", "--out", str(tmp_path / "t.spec")]) == 0
    assert "holds the text format only" not in capsys.readouterr().err


def test_convert_says_why_a_tool_part_is_refused(tmp_path, capsys):
    """An Ollama Modelfile whose TEMPLATE has a .Tools branch: the text part converts, the tool part
    is refused on stderr with the reason (exit 0: the text format is written)."""
    mf = tmp_path / "Modelfile"
    # Ollama's library layout (as tests/convert/test_from_ollama.py) with a Qwen-style .Tools branch
    t = ("{{- if .System }}<|im_start|>system\n{{ .System }}{{ if .Tools }}\n\n# Tools\n<tools>"
         "{{ range .Tools }}\n{\"type\": \"function\", \"function\": {{ .Function }}}{{ end }}\n</tools>{{ end }}"
         "<|im_end|>\n{{ end }}"
         "{{- range $i, $_ := .Messages }}{{- $last := eq (len (slice $.Messages $i)) 1 }}"
         "{{- if eq .Role \"user\" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n"
         "{{ else if eq .Role \"assistant\" }}<|im_start|>assistant\n{{ .Content }}"
         "{{ if not $last }}<|im_end|>\n{{ end }}{{ end }}{{ if and $last (ne .Role \"assistant\") }}"
         "<|im_start|>assistant\n{{ end }}{{ end }}")
    mf.write_text(f'FROM x.gguf\nTEMPLATE """{t}"""\n')
    assert main(["convert", str(mf), "--to", "spec"]) == 0
    cap = capsys.readouterr()
    assert "tools: refused: an Ollama template's tool part" in cap.err, cap.err
    assert "{SYSTEM|nonempty}" in cap.out


#: ChatML, except that an answer right after an answer continues it (no new turn)
CHATML_JOINING = ("{% for m in messages %}{% if m.role == 'assistant' and not loop.first and "
                  "messages[loop.index0 - 1].role == 'assistant' %}{{ m.content }}<|im_end|>\n{% else %}"
                  "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}"
                  "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_convert_names_shapes_the_template_renders_otherwise(tmp_path, capsys):
    """A template that renders two answers in a row otherwise than the format (which gives each its
    own turn) converts exactly on alternating turns, with a caveat and a note naming the shape; a
    template that renders them as separate turns gets neither."""
    import yaml

    import tmplc
    from tmplc.convert.corpus import hf_render

    msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"}]
    joined = hf_render(CHATML_JOINING, msgs, False, None, "<|im_end|>")
    assert joined.endswith("<|im_start|>assistant\na<|im_end|>\nb<|im_end|>\n")  # the premise, by transformers
    assert tmplc.load("chatml").render(msgs).endswith("<|im_start|>assistant\nb<|im_end|>\n")
    for template, noted in ((CHATML_JOINING, True), (CHATML, False)):
        d = tmp_path / ("joining" if noted else "plain")
        d.mkdir()
        p = _cfg(d, template)
        assert main(["convert", str(p), "--to", "yaml"]) == 0
        out = capsys.readouterr()
        caveat = ("tmplc: caveat: the template renders two answers in a row otherwise than this format (each "
                  "message its own turn): rows with two answers in a row train a text the template does not show")
        assert (caveat in out.err) == noted, out.err
        notes = yaml.safe_load(out.out)["notes"]
        assert ("the template renders two answers in a row otherwise" in notes) == noted
        assert "two user messages in a row" not in out.err + notes
        fmt = tmplc.from_jinja(template, eos_token="<|im_end|>")
        assert ("two answers in a row" in fmt.meta.notes) == noted
