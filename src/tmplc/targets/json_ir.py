"""IR <-> JSON-serialisable dict (``tmplc compile --to json``)."""

from __future__ import annotations

from typing import Any

from tmplc.ir import ChatFormat, Fragment, Metadata, SpecialToken, Structure, SystemBlock, Text, Turn, fragment


def _frag(f: Fragment) -> list:
    return [p.value if isinstance(p, Text) else {"token": p.name} for p in f]


def _unfrag(items: list) -> Fragment:
    return fragment(Text(x) if isinstance(x, str) else SpecialToken(x["token"]) for x in items)


def to_dict(fmt: ChatFormat) -> dict[str, Any]:
    st = fmt.structure
    sb = st.system
    return {
        "name": fmt.meta.name,
        "description": fmt.meta.description,
        "aliases": list(fmt.meta.aliases),
        "bos_token": fmt.meta.bos_token,
        "eos_token": fmt.meta.eos_token,
        "eot_token": fmt.meta.eot_token,
        "stop": list(fmt.stop_strings),
        "structure": {
            "preamble": _frag(st.preamble),
            "system": None if sb is None else {
                "placement": sb.placement, "prefix": _frag(sb.prefix), "suffix": _frag(sb.suffix),
                "trim": sb.trim, "default": sb.default},
            "user": {"prefix": _frag(st.user.prefix), "suffix": _frag(st.user.suffix), "trim": st.user.trim},
            "assistant": {"prefix": _frag(st.assistant.prefix), "lead": _frag(st.assistant.lead),
                          "suffix": _frag(st.assistant.suffix), "trim": st.assistant.trim},
        },
    }


def from_dict(d: dict[str, Any]) -> ChatFormat:
    s = d["structure"]
    sb = s.get("system")
    system = None if sb is None else SystemBlock(sb["placement"], _unfrag(sb["prefix"]), _unfrag(sb["suffix"]),
                                                 sb.get("trim", False), sb.get("default"))
    st = Structure(_unfrag(s["preamble"]), system,
                   Turn(_unfrag(s["user"]["prefix"]), _unfrag(s["user"]["suffix"]), s["user"].get("trim", False)),
                   Turn(_unfrag(s["assistant"]["prefix"]), _unfrag(s["assistant"]["suffix"]),
                        s["assistant"].get("trim", False), _unfrag(s["assistant"].get("lead", []))))
    meta = Metadata(name=d.get("name", "custom"), description=d.get("description", ""),
                    aliases=tuple(d.get("aliases", ())), bos_token=d.get("bos_token"),
                    eos_token=d.get("eos_token"), eot_token=d.get("eot_token"), stop=tuple(d.get("stop", ())))
    return ChatFormat(st, meta)
