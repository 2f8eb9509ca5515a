"""``tmplc render --tools FILE``: tool conversations from a messages file, the tools from a JSON
file; the output equals the real Qwen3 template's; bad input exits 2 naming the file, line and
column (JSON) or the message index."""

from __future__ import annotations

import json

from tmplc.cli import main

from conftest import load_tokenizer
from tools.test_qwen3_tools_real import AGENT, WEATHER


def _files(tmp_path, msgs=AGENT, tools=(WEATHER,)):
    m, t = tmp_path / "conv.json", tmp_path / "tools.json"
    m.write_text(json.dumps(msgs), encoding="utf-8")
    t.write_text(json.dumps(list(tools)), encoding="utf-8")
    return str(m), str(t)


def test_render_with_tools_equals_the_real_template(tmp_path, capsys):
    m, t = _files(tmp_path)
    assert main(["render", "qwen3-tools", "--messages", m, "--tools", t]) == 0
    real = load_tokenizer("qwen3").apply_chat_template(AGENT, tools=[WEATHER], tokenize=False)
    assert capsys.readouterr().out == real


def test_render_tool_messages_without_tools(tmp_path, capsys):
    m, _ = _files(tmp_path)
    assert main(["render", "qwen3-tools", "--messages", m, "--add-generation-prompt"]) == 0
    real = load_tokenizer("qwen3").apply_chat_template(AGENT, tokenize=False, add_generation_prompt=True)
    assert capsys.readouterr().out == real


def test_show_labels_trains_the_calls_not_the_results(tmp_path, capsys):
    from conftest import tokenizer_dir

    m, t = _files(tmp_path)
    assert main(["render", "qwen3-tools", "--messages", m, "--tools", t, "--show-labels", "--plain",
                 "--tokenizer", str(tokenizer_dir("qwen3"))]) == 0
    out = capsys.readouterr().out
    trained = "".join(run.split("]]")[0] for run in out.split("[[")[1:])
    assert '"·get·_weather·",· "·arguments·"' in trained and "rain" not in trained.split("Tokyo· rain")[0]


def test_a_text_format_refuses_tools(tmp_path, capsys):
    m, t = _files(tmp_path)
    assert main(["render", "qwen3", "--messages", m, "--tools", t]) == 2
    assert "tools.json: format 'qwen3' has no tool support" in capsys.readouterr().err
    assert main(["render", "qwen3", "--messages", m]) == 2
    assert "message 2: format 'qwen3' has no tool support: it cannot render tool_calls" in capsys.readouterr().err


def test_bad_tools_file(tmp_path, capsys):
    m, t = _files(tmp_path)
    (tmp_path / "tools.json").write_text('[{"type": "function",\n  oops}]', encoding="utf-8")
    assert main(["render", "qwen3-tools", "--messages", m, "--tools", t]) == 2
    assert "tools.json:2:3: invalid JSON" in capsys.readouterr().err
    (tmp_path / "tools.json").write_text('["get_weather"]', encoding="utf-8")
    assert main(["render", "qwen3-tools", "--messages", m, "--tools", t]) == 2
    assert "tools[0] must be an object" in capsys.readouterr().err


def test_each_rows_tools_column_renders_with_its_row(tmp_path, capsys):
    """A JSONL row's ``tools`` column (as ``tmplc format`` reads it: a list, or a JSON string of
    one) renders with that row, and only that row; ``--tools`` beside a row with tools is an
    error naming the row (never one silently winning); ``--tools-column ''`` ignores the column;
    a text format refuses a row with tools instead of dropping them."""
    p = tmp_path / "rows.jsonl"
    rows = [{"messages": AGENT, "tools": [WEATHER]}, {"messages": AGENT[:2]},
            {"messages": AGENT[:2], "tools": json.dumps([WEATHER])}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tok = load_tokenizer("qwen3")
    assert main(["render", "qwen3-tools", "--messages", str(p)]) == 0
    want = [tok.apply_chat_template(AGENT, tools=[WEATHER], tokenize=False),
            tok.apply_chat_template(AGENT[:2], tokenize=False),
            tok.apply_chat_template(AGENT[:2], tools=[WEATHER], tokenize=False)]
    assert capsys.readouterr().out == "".join(want)
    _, t = _files(tmp_path)
    assert main(["render", "qwen3-tools", "--messages", str(p), "--tools", t]) == 2
    assert "row 0 of " + str(p) + " has its own tools (column 'tools')" in capsys.readouterr().err
    assert main(["render", "qwen3-tools", "--messages", str(p), "--tools", t, "--tools-column", ""]) == 0
    assert capsys.readouterr().out == "".join(tok.apply_chat_template(m, tools=[WEATHER], tokenize=False)
                                              for m in (AGENT, AGENT[:2], AGENT[:2]))
    assert main(["render", "qwen3", "--messages", str(p)]) == 2
    assert "row 0: format 'qwen3' has no tool support" in capsys.readouterr().err
