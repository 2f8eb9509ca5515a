"""Fixtures for the exporter's tests: tiny random models (built once per session) with the real
fixture tokenizers, and the real llama.cpp library (llama-cpp-python built from the pinned sdist).

Missing pieces fail under CI=true and skip otherwise (tests/conftest.py's ``missing_fixture``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import missing_fixture, tokenizer_dir  # tests/conftest.py

from .tiny_models import make_tiny


def need_llama_cpp():
    try:
        import llama_cpp
    except Exception as exc:  # ImportError or a broken libllama
        missing_fixture(f"llama-cpp-python ({exc})", "run: bash scripts/setup.sh (builds it from the pinned sdist)")
    return llama_cpp


def need_engines() -> None:
    from tmplc.engines.llamacpp import ensure_llamacpp_driver
    from tmplc.engines.ollama import harness_binary

    try:
        ensure_llamacpp_driver()
        harness_binary()
    except Exception as exc:
        missing_fixture(f"llama.cpp's Jinja engine / the Go harness ({exc})", "run: bash scripts/setup.sh")


@pytest.fixture(scope="session")
def llama_cpp():
    return need_llama_cpp()


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """``tiny(key, kind, fixture, **kw)``: a tiny model folder, built once per key."""
    built: dict[str, Path] = {}

    def make(key: str, kind: str, fixture: str, **kw) -> Path:
        if key not in built:
            built[key] = make_tiny(kind, tokenizer_dir(fixture), tmp_path_factory.mktemp(key), **kw)
        return built[key]

    return make


@pytest.fixture(scope="session")
def exported(tiny, tmp_path_factory):
    """``exported(key, kind, fixture, template, outtypes, **kw)``: (model folder, out folder, report)."""
    need_llama_cpp()
    need_engines()
    from tmplc.export import export

    done: dict[str, tuple] = {}

    def run(key: str, kind: str, fixture: str, template: str, outtypes: str, **kw):
        if key not in done:
            model = tiny(key, kind, fixture, template=template)
            out = tmp_path_factory.mktemp(key + "-out")
            done[key] = (model, out, export(model, None, out, outtypes=outtypes, **kw))
        return done[key]

    return run
