"""IR <-> JSON-serialisable dict (``tmplc compile --to json``)."""

from __future__ import annotations

from typing import Any

from tmplc.ir import ChatFormat, DateToken, FinalAnswer, Fragment, ThinkBlock, Metadata, SpecialToken, Structure, SystemBlock, Text, Turn, fragment


def _frag(f: Fragment) -> list:
    return [p.value if isinstance(p, Text) else {"date": p.format} if isinstance(p, DateToken)
            else {"token": p.name} for p in f]


def _unfrag(items: list) -> Fragment:
    return fragment(Text(x) if isinstance(x, str) else DateToken(x["date"]) if "date" in x
                    else SpecialToken(x["token"]) for x in items)


def _block(t: ThinkBlock | None) -> dict | None:
    return None if t is None else {"open": t.open, "close": t.close, "always": t.always, "trim": t.trim}


def _unblock(t: dict | None) -> ThinkBlock | None:
    return None if t is None else ThinkBlock(t.get("open", ""), t.get("close", ""), t.get("always", False),
                                             t.get("trim", False))


def _final(f: FinalAnswer | None) -> dict | None:
    if f is None:
        return None
    return {"drop_think": f.drop_think, "lstrip_nl": f.lstrip_nl, "trim": f.trim, "trim_side": f.trim_side,
            "trim_first": f.trim_first, "think": _block(f.think)}


def _unfinal(d: dict | None) -> FinalAnswer | None:
    if d is None:
        return None
    return FinalAnswer(d.get("drop_think", ""), d.get("lstrip_nl", False), d.get("trim", False),
                       d.get("trim_side", "both"), _unblock(d.get("think")), d.get("trim_first", False))


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
                "trim": sb.trim, "trim_side": sb.trim_side, "default": sb.default,
                "skip_empty": sb.skip_empty, "absent": None if sb.absent is None else _frag(sb.absent)},
            "user": {"prefix": _frag(st.user.prefix), "suffix": _frag(st.user.suffix), "trim": st.user.trim,
                     "trim_side": st.user.trim_side},
            "closing": _frag(st.closing),
            "prompt_after_answer": st.prompt_after_answer,
            "final_scope": st.final_scope,
            "assistant": {"prefix": _frag(st.assistant.prefix), "lead": _frag(st.assistant.lead),
                          "suffix": _frag(st.assistant.suffix), "trim": st.assistant.trim,
                          "trim_side": st.assistant.trim_side, "prompt_only": st.assistant.prompt_only,
                          "drop_think": st.assistant.drop_think,
                          "final_suffix": None if st.assistant.final_suffix is None
                          else _frag(st.assistant.final_suffix),
                          "lstrip_nl": st.assistant.lstrip_nl, "trim_first": st.assistant.trim_first,
                          "final": _final(st.assistant.final), "think": _block(st.assistant.think),
                          "empty": None if st.assistant.empty is None else _frag(st.assistant.empty),
                          "empty_raw": st.assistant.empty_raw},
        },
    }


def from_dict(d: dict[str, Any]) -> ChatFormat:
    s = d["structure"]
    sb = s.get("system")
    system = None if sb is None else SystemBlock(sb["placement"], _unfrag(sb["prefix"]), _unfrag(sb["suffix"]),
                                                 sb.get("trim", False), sb.get("default"),
                                                 sb.get("trim_side", "both"), sb.get("skip_empty", False),
                                                 None if sb.get("absent") is None else _unfrag(sb["absent"]))
    u, a = s["user"], s["assistant"]
    st = Structure(_unfrag(s["preamble"]), system,
                   Turn(_unfrag(u["prefix"]), _unfrag(u["suffix"]), u.get("trim", False),
                        trim_side=u.get("trim_side", "both")),
                   Turn(_unfrag(a["prefix"]), _unfrag(a["suffix"]), a.get("trim", False), _unfrag(a.get("lead", [])),
                        a.get("trim_side", "both"), a.get("prompt_only", ""), a.get("drop_think", ""),
                        None if a.get("final_suffix") is None else _unfrag(a["final_suffix"]),
                        a.get("lstrip_nl", False), _unfinal(a.get("final")), a.get("trim_first", False),
                        _unblock(a.get("think")),
                        None if a.get("empty") is None else _unfrag(a["empty"]), a.get("empty_raw", False)),
                   _unfrag(s.get("closing", [])), s.get("prompt_after_answer", "final"),
                   s.get("final_scope", "last"))
    meta = Metadata(name=d.get("name", "custom"), description=d.get("description", ""),
                    aliases=tuple(d.get("aliases", ())), bos_token=d.get("bos_token"),
                    eos_token=d.get("eos_token"), eot_token=d.get("eot_token"), stop=tuple(d.get("stop", ())))
    return ChatFormat(st, meta)
