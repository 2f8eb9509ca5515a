"""The real-template corpus: converted / refused (by reason) / wrong, where wrong must be 0.

Wrong is checked independently of the converter's own verification (tmplc.convert.corpus:
fresh conversations; the original through transformers and the sandbox; the result through
fmt.render and its to_jinja() through transformers).  Collect the corpus with
``python scripts/fetch_corpus.py`` (after ``bash scripts/fetch_fixtures.sh``).
"""

from __future__ import annotations

import pytest

from conftest import missing_fixture
from tmplc.convert import corpus


@pytest.fixture(scope="module")
def entries():
    got = corpus.load()
    if not any(e.name.startswith("llamacpp-") for e in got):
        try:
            corpus.collect(fetch=False)
        except Exception:  # noqa: BLE001 - not fetched yet
            pass
        got = corpus.load()
    if not any(e.name.startswith("llamacpp-") for e in got):
        missing_fixture("the template corpus (llama-cpp-python sdist models/templates)",
                        "run: python scripts/fetch_corpus.py")
    return got


def test_corpus_has_no_wrong_conversion(entries):
    results = [corpus.evaluate(e, n_check=30) for e in entries]
    wrong = [r for r in results if r.status == "wrong"]
    print("\n" + corpus.table(results))
    assert not wrong, "\n".join(f"{r.entry.name}: {r.reason}" for r in wrong)
    # a floor under the measured figure (BENCHMARKS.md): a change that loses conversions fails here
    assert sum(r.status == "converted" for r in results) >= 36
    for r in results:
        if r.status == "refused":
            assert r.reason and r.category


def test_independent_check_catches_a_wrong_conversion(entries):
    """The checker is not a rubber stamp: a format that differs by one character is reported."""
    from dataclasses import replace

    from tmplc import registry
    from tmplc.ir import Text, Turn

    fmt = registry["chatml"]
    e = corpus.Entry("chatml", "test", fmt.to_jinja(), None, "<|im_end|>")
    assert corpus.independent_check(e, fmt, 10) is None
    st = fmt.structure
    bad = replace(fmt, structure=replace(st, assistant=Turn(st.assistant.prefix, (Text("<|im_end|>"),))))
    assert corpus.independent_check(e, bad, 10) is not None
