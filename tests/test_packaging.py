"""The wheel ships grammars/ and templates/ and works installed (not only editable);
`import tmplc` and `tmplc compile` stay free of torch/transformers."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (whl,) = out.glob("tmplc-*.whl")
    return whl


def test_wheel_contains_grammar_and_registry(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "tmplc/grammars/chat_spec.lark" in names
    registry = sorted(n for n in names if n.startswith("tmplc/templates/") and n.endswith(".yaml"))
    assert len(registry) == len(list((ROOT / "templates").glob("*.yaml"))) > 0
    assert any(n.startswith("tmplc/engines/ollama_harness/main.go") for n in names)


def test_installed_wheel_works_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    env = dict(os.environ, PYTHONPATH=str(target))
    code = (
        "import sys, tmplc, tmplc.resources as r\n"
        "from tmplc.cli import main\n"
        f"assert str(r.grammar_path()).startswith({str(target)!r}), r.grammar_path()\n"
        f"assert str(r.templates_dir()).startswith({str(target)!r}), r.templates_dir()\n"
        "assert len(tmplc.registry) > 0\n"
        "rc = main(['compile', 'chatml', '--to', 'jinja'])\n"
        "assert rc == 0\n"
        "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, 'heavy import'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "{%- for message in messages -%}" in res.stdout


def test_import_and_compile_do_not_load_heavy_libraries():
    code = (
        "import sys, tmplc\n"
        "from tmplc.cli import main\n"
        "for name in tmplc.registry: tmplc.registry[name].to_jinja(); tmplc.registry[name].to_spec()\n"
        "main(['compile', 'llama-3', '--to', 'json'])\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'tokenizers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
