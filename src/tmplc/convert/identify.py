"""``identify(fmt)``: the registry entry a format is equivalent to — by IR equality, never by
string distance.

Two formats are the same when their layouts are equal after resolving ``{BOS}``/``{EOS}`` to
the token strings each declares (so a template that writes ``<s>`` literally equals a spec that
writes ``{BOS}`` with ``bos_token: <s>``).  Metadata that does not change rendering (name,
description, stop strings) is ignored.
"""

from __future__ import annotations

from dataclasses import replace

from tmplc.ir import ChatFormat, Fragment, SpecialToken, Structure, Text, fragment  # noqa: F401


def _resolve(frag: Fragment, bos: str | None, eos: str | None) -> Fragment:
    out = []
    for p in frag:
        if isinstance(p, SpecialToken):
            tok = bos if p.name == "BOS" else eos
            out.append(Text(tok) if tok is not None else p)  # an undeclared token stays symbolic
        else:
            out.append(p)
    return fragment(out)


def resolved_structure(fmt: ChatFormat) -> Structure:
    """The layout with BOS/EOS replaced by the declared token strings."""
    st = fmt.structure
    bos, eos = fmt.meta.bos_token, fmt.meta.eos_token

    def r(f: Fragment) -> Fragment:
        return _resolve(f, bos, eos)

    system = None
    if st.system is not None:
        system = replace(st.system, prefix=r(st.system.prefix), suffix=r(st.system.suffix))
    # every other field (closing, answer scope, tool part, ...) is compared as it is
    return replace(st, preamble=r(st.preamble), system=system,
                   user=replace(st.user, prefix=r(st.user.prefix), suffix=r(st.user.suffix)),
                   assistant=replace(st.assistant, prefix=r(st.assistant.prefix), suffix=r(st.assistant.suffix)))


def equivalent(a: ChatFormat, b: ChatFormat) -> bool:
    """Whether two formats render every conversation identically (equal resolved layouts)."""
    return resolved_structure(a) == resolved_structure(b)


def identify(fmt: ChatFormat) -> str | None:
    """The name of the registry entry equivalent to ``fmt``, or None."""
    from tmplc.registry import registry

    target = resolved_structure(fmt)
    for name in registry:
        try:
            entry = registry[name]
        except Exception:  # noqa: BLE001 - a broken entry is not a match
            continue
        if resolved_structure(entry) == target:
            return name
    return None
