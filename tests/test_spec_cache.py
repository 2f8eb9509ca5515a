"""The saved spec parser (Lark's analysed tables under the cache folder) and the compiled-spec
cache both follow the grammar: a changed grammar is never answered from a parser or a result
saved for the old one."""

from __future__ import annotations

import pytest

from tmplc import SpecError
from tmplc.resources import grammar_path
from tmplc.spec import parse


@pytest.fixture
def fresh_parser(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPLC_CACHE_DIR", str(tmp_path / "cache"))
    parse._parser.cache_clear()
    yield tmp_path / "cache" / "lark"
    parse._parser.cache_clear()  # the next test builds (or loads) the real grammar's again


def test_a_changed_grammar_gets_its_own_saved_parser(fresh_parser, tmp_path, monkeypatch):
    with pytest.raises(SpecError, match="does not start a placeholder"):
        parse.parse_atoms("U:{IN-PUT}")  # "-" is not in a placeholder name
    saved = set(fresh_parser.iterdir())
    assert len(saved) == 1
    # the same grammar again: the saved parser is loaded, nothing new is written
    parse._parser.cache_clear()
    parse.parse_atoms("U:{INPUT}")
    assert set(fresh_parser.iterdir()) == saved
    # a grammar whose placeholder names may hold "-": a second saved parser, and it is the one used
    text = grammar_path().read_text(encoding="utf-8")
    old = "NAME: /\\/?[A-Za-z_][A-Za-z0-9_]*/"
    assert old in text
    changed = tmp_path / "chat_spec.lark"
    changed.write_text(text.replace(old, "NAME: /\\/?[A-Za-z_][A-Za-z0-9_-]*/"), encoding="utf-8")
    monkeypatch.setattr(parse, "grammar_path", lambda: changed)
    parse._parser.cache_clear()
    with pytest.raises(SpecError, match=r"unknown placeholder \{IN-PUT\}"):
        parse.parse_atoms("U:{IN-PUT}")
    assert len(set(fresh_parser.iterdir())) == 2


def test_the_compiled_spec_cache_key_covers_the_grammar(tmp_path, monkeypatch):
    from tmplc.spec import cache

    cache._compiler_digest.cache_clear()
    before = cache._compiler_digest()
    changed = tmp_path / "chat_spec.lark"
    changed.write_text(grammar_path().read_text(encoding="utf-8") + "\n// changed\n", encoding="utf-8")
    monkeypatch.setattr("tmplc.resources.grammar_path", lambda: changed)
    cache._compiler_digest.cache_clear()
    try:
        assert cache._compiler_digest() != before
    finally:
        monkeypatch.undo()
        cache._compiler_digest.cache_clear()
    assert cache._compiler_digest() == before
