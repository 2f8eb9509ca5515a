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


def _appended(folder, chunks, head: bytes, fail_at: int | None = None, monkeypatch=None) -> bytes:
    """Write ``head`` normally, then ``chunks`` through the writer's O_DIRECT appender; the file."""
    import os

    path = folder / "f.bin"
    path.write_bytes(head)
    calls = {"n": 0}
    if fail_at is not None:
        real = os.pwrite

        def pwrite(fd, data, off):  # the n-th direct write fails, as on a filesystem that refuses it late
            calls["n"] += 1
            if calls["n"] == fail_at:
                raise OSError(22, "Invalid argument")
            return real(fd, data, off)

        monkeypatch.setattr(os, "pwrite", pwrite)
    with open(path, "ab", buffering=0) as fh:
        a = writer._Appender(fh, head[len(head) - len(head) % writer._BLOCK:])
        for c in chunks:
            a.write(memoryview(c))
        a.close()
    return path.read_bytes()


@pytest.mark.parametrize("where", ["tmp", "shm"])
@pytest.mark.parametrize("fail_at", [None, 1, 3])
def test_the_direct_appender_writes_the_same_bytes(tmp_path, monkeypatch, where, fail_at):
    """Chunks of every size (beyond the staging buffer, block multiples, single bytes) after a
    header that ends mid-block: the file is header + chunks on a disk (O_DIRECT), on tmpfs
    (where it may be refused), and when a direct write fails midway (the rest is written normally)."""
    import os
    import random
    from pathlib import Path

    if where == "shm":
        folder = Path("/dev/shm") / f"tmplc-test-{os.getpid()}-{fail_at}"
        folder.mkdir(exist_ok=True)
    else:
        folder = tmp_path
    monkeypatch.setattr(writer, "_STAGE", 3 * writer._BLOCK)
    rng = random.Random(5)
    head = rng.randbytes(5 * writer._BLOCK + 123)
    chunks = [rng.randbytes(n) for n in (1, 4096, 10_000, 3 * 4096, 12_289, 0, 7, 40_000, 4095)]
    try:
        got = _appended(folder, chunks, head, fail_at, monkeypatch)
    finally:
        if where == "shm":
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    assert got == head + b"".join(chunks)
