"""The one-pass writer streams tensors in chunks of rows: the bytes do not depend on the chunk size
(many chunks per tensor, few, the default), and each file's sha256 in the report,
hashed while writing, is the file's."""

from __future__ import annotations

import hashlib

import pytest

from tmplc.export import export
from tmplc.export import writer

from .conftest import need_engines, need_llama_cpp


@pytest.fixture(scope="module")
def model(tiny):
    need_llama_cpp()
    need_engines()
    return tiny("stream", "llama", "llama3", template="llama-3", seed=11)


def _digests(out):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.gguf"))}


def test_bytes_do_not_depend_on_the_chunk_size(model, tmp_path, monkeypatch):
    base = export(model, None, tmp_path / "default", outtypes="f32,f16,bf16,q8_0", name="m", logits=False)
    assert base.ok, base.summary()
    want = _digests(tmp_path / "default")
    assert len(want) == 4 and {k: base.files[k] for k in want} == want  # hashed while writing == the file
    for elems in (1000, 70_000):  # 15 and 1093 rows of 64 per chunk: chunk ends fall mid-tensor
        monkeypatch.setattr(writer, "CHUNK_ELEMS", elems)
        out = tmp_path / f"chunk{elems}"
        rep = export(model, None, out, outtypes="f32,f16,bf16,q8_0", name="m", logits=False)
        assert _digests(out) == want
        assert {k: rep.files[k] for k in want} == want
