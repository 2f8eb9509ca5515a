"""load_template_source: tokenizer_config.json (string / named list), chat_template.jinja, a model
folder, a GGUF file, a Modelfile; identify by IR equality."""

from __future__ import annotations

import json

import pytest

from tmplc import parse_spec, registry
from tmplc.convert import TemplateSourceError, identify, load_template_source
from tmplc.convert.identify import equivalent

CHATML = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def test_tokenizer_config_string(tmp_path):
    p = tmp_path / "tokenizer_config.json"
    p.write_text(json.dumps({"chat_template": CHATML, "bos_token": {"content": "<s>", "lstrip": False},
                             "eos_token": "<|im_end|>"}))
    src = load_template_source(p)
    assert (src.template, src.bos_token, src.eos_token, src.kind) == (CHATML, "<s>", "<|im_end|>", "jinja")
    assert identify(src.convert()) == "chatml"


def test_tokenizer_config_named_list(tmp_path):
    p = tmp_path / "tokenizer_config.json"
    p.write_text(json.dumps({"chat_template": [{"name": "tool_use", "template": "x"},
                                               {"name": "default", "template": CHATML}]}))
    src = load_template_source(p)
    assert src.template == CHATML and src.named == {"tool_use": "x"}


def test_named_list_without_default_is_an_error(tmp_path):
    p = tmp_path / "tokenizer_config.json"
    p.write_text(json.dumps({"chat_template": [{"name": "a", "template": "x"}, {"name": "b", "template": "y"}]}))
    with pytest.raises(TemplateSourceError, match="no 'default'"):
        load_template_source(p)


def test_chat_template_jinja_takes_tokens_from_the_sibling_config(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    (tmp_path / "chat_template.jinja").write_text(CHATML)
    src = load_template_source(tmp_path / "chat_template.jinja")
    assert (src.template, src.bos_token, src.eos_token) == (CHATML, "<s>", "</s>")
    assert load_template_source(tmp_path).template == CHATML  # folder


def test_folder_prefers_tokenizer_config_and_notes_a_stale_copy(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML}))
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    src = load_template_source(tmp_path)
    assert src.template == CHATML and "differs" in src.notes


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
    src = load_template_source(path)
    assert (src.template, src.bos_token, src.eos_token) == (CHATML, "<s>", "<|im_end|>")
    assert identify(src.convert()) == "chatml"


def test_gguf_template_not_utf8_is_bad_input(tmp_path):
    import gguf
    from tmplc.cli import main
    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_token_list(["<s>", "a"])
    w.add_chat_template("MARKER{{ messages }}")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    data = path.read_bytes()
    path.write_bytes(data.replace(b"MARKER", b"\xffMARKE"))
    with pytest.raises(TemplateSourceError, match="not valid UTF-8"):
        load_template_source(path)
    assert main(["convert", str(path), "--to", "spec"]) == 2


def test_gguf_truncated_is_bad_input(tmp_path):
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF\x03\x00\x00\x00\x01")
    with pytest.raises(TemplateSourceError, match="not a readable GGUF"):
        load_template_source(path)


def test_modelfile(tmp_path):
    p = tmp_path / "Modelfile"
    p.write_text('FROM ./m.gguf\nTEMPLATE """{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}'
                 '<|im_end|>\n{{ end }}"""\nSYSTEM "Be brief."\n')
    src = load_template_source(p)
    assert src.kind == "ollama" and src.system == "Be brief." and src.template.startswith("{{ range")


def test_missing_path(tmp_path):
    with pytest.raises(TemplateSourceError):
        load_template_source(tmp_path / "nope")


def test_identify_is_ir_equality_not_string_distance():
    chatml = registry["chatml"]
    # one character different in the assistant suffix: a different format, not "close enough"
    near = parse_spec(chatml.to_spec().replace("{OUTPUT}<|im_end|>\n", "{OUTPUT}<|im_end|>\n\n"))
    assert identify(near) is None
    # a literal BOS string equals {BOS} with that bos_token
    a = parse_spec("{BOS}U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n", bos_token="<s>")
    b = parse_spec("<s>U:{INPUT}\nA:{OUTPUT}\nU:{INPUT}\nA:{OUTPUT}\n")
    assert equivalent(a, b)
    assert not equivalent(a, a.with_meta(bos_token="<bos>"))
