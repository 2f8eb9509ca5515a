"""The trained/masked token view (``tmplc format --preview``): one line of tokens per row.

Tokens are separated by ``·``; newlines and tabs are shown as ``\\n`` / ``\\t`` (a backslash as
``\\\\``).  With colour (a terminal): trained tokens bold green underlined, masked tokens dim.
Without: runs of trained tokens are wrapped in ``[[ ]]``.
"""

from __future__ import annotations

IGNORE = -100
_TRAINED = "\x1b[1;4;32m"
_MASKED = "\x1b[2m"
_RESET = "\x1b[0m"


def token_pieces(info, ids: list[int]) -> list[str]:
    """Each id decoded on its own, escaped for one-line display."""
    rust = info.rust
    out = []
    for i in ids:
        s = rust.decode([i], skip_special_tokens=False)
        out.append(s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t"))
    return out


def label_view(info, ids: list[int], labels: list[int], *, color: bool = False) -> str:
    pieces = token_pieces(info, ids)
    trained = [lab != IGNORE for lab in labels]
    buf = []
    for k, (p, t) in enumerate(zip(pieces, trained)):
        if color:
            if k:
                buf.append(f"{_MASKED}·{_RESET}")
            buf.append(f"{_TRAINED if t else _MASKED}{p}{_RESET}")
            continue
        if t and (k == 0 or not trained[k - 1]):
            buf.append("[[")
        elif k:
            buf.append("·")
        buf.append(p)
        if t and (k + 1 == len(trained) or not trained[k + 1]):
            buf.append("]]")
    return "".join(buf)
