"""``tokenizer.ggml.pre``: which BPE pre-tokenizer llama.cpp must use, found the way llama.cpp's
``convert_hf_to_gguf.py`` finds it -- encode its fixed check text with the HF tokenizer, hash
``str(token_ids)`` with SHA-256, look the hash up in its table.  An unknown hash is refused:
a wrong pre-tokenizer silently changes tokenization (llama.cpp issue 7062).

The check text and the table are facts of the pinned llama.cpp (``conversion/base.py``'s
``get_vocab_base_pre`` in the llama-cpp-python 0.3.36 sdist), copied by
``scripts/gen_gguf_pre_hashes.py`` into :mod:`tmplc.export.pre_hashes` with
:func:`parse_pre_table`; a test re-reads the sdist and compares.  In that function the hashes
are tested by a run of ``if`` statements, so when a hash appears twice the *last* name wins.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tmplc.export.errors import ExportRefused

_IF = re.compile(r'if chkhsh == "([0-9a-f]{64})":\s*\n(?:[ \t]*#[^\n]*\n)*[ \t]*res = "([^"]+)"')
_CHKTXT = re.compile(r"^\s*chktxt = (.+)$", re.M)


def parse_pre_table(base_py: str) -> tuple[str, dict[str, str]]:
    """(check text, {sha256: pre name}) from the text of llama.cpp's ``conversion/base.py``."""
    import ast

    start = base_py.index("def get_vocab_base_pre(")
    end = base_py.index("return res", start)
    body = base_py[start:end]
    m = _CHKTXT.search(body)
    if m is None:
        raise ValueError("no chktxt in get_vocab_base_pre")
    chktxt = ast.literal_eval(m.group(1))
    table: dict[str, str] = {}
    for h, name in _IF.findall(body):
        table[h] = name  # later ifs overwrite earlier ones, as in llama.cpp
    return chktxt, table


def check_hash(tokenizer: Any) -> str:
    """SHA-256 of ``str(tokenizer.encode(CHECK_TEXT))``, exactly as llama.cpp computes it."""
    from tmplc.export.pre_hashes import CHECK_TEXT

    ids = tokenizer.encode(CHECK_TEXT)
    return hashlib.sha256(str(list(ids)).encode()).hexdigest()


def pre_tokenizer_name(tokenizer: Any, where: str) -> str:
    """The ``tokenizer.ggml.pre`` value for a BPE tokenizer, or :class:`ExportRefused`."""
    from tmplc.export.pre_hashes import PRE_HASHES

    h = check_hash(tokenizer)
    name = PRE_HASHES.get(h)
    if name is None:
        raise ExportRefused(
            f"{where}: llama.cpp does not know this BPE pre-tokenizer (check-text hash {h}); tmplc "
            "refuses to guess one (a wrong tokenizer.ggml.pre silently changes tokenization). Export the "
            "base model's tokenizer files with the fine-tune, or add the model to llama.cpp's "
            "convert_hf_to_gguf_update.py")
    return name
