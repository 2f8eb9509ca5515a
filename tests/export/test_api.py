"""The Python API: ``tmplc.export`` is lazy (no torch/transformers on ``import tmplc``) and callable."""

from __future__ import annotations

import subprocess
import sys


def test_lazy_and_callable():
    code = ("import sys, tmplc; assert 'torch' not in sys.modules and 'transformers' not in sys.modules; "
            "import tmplc.export.exporter; assert callable(tmplc.export); "
            "from tmplc import export, ExportReport; assert callable(export) and ExportReport.__name__ == 'ExportReport'; "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
