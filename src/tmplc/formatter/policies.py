"""Masking policies: which rendered text trains.

A policy decides, for every segment of the reference rendering (``ChatFormat.segments``),
whether its characters are *trainable*.  Tokens then train iff their whole character span lies
inside trainable text (see ``tmplc.formatter.core`` for the straddling rule).

A policy has four knobs:

``roles``
    the roles whose turns train (default: ``("assistant",)``).
``train_eot``
    whether the *suffix* of a trained turn trains: the end-of-turn / EOS token and whatever the
    format puts after it inside the turn (ChatML's ``"\\n"`` after ``<|im_end|>``).  Default yes:
    a model that never sees its end-of-turn token as a target never learns to stop.
``train_header``
    whether the *prefix* of a trained turn trains (``<|start_header_id|>assistant<|end_header_id|>\\n\\n``).
    Default no.
``last_turn_only``
    only the last message whose role is in ``roles`` trains.
``train_reasoning``
    whether an answer's reasoning block (``{THINK}...{/THINK}``, e.g. Qwen3's ``<think>...</think>``
    around the reasoning) trains with its content.  Default yes; ``assistant_no_reasoning`` masks it.
    (Reasoning of *earlier* answers is dropped by the format itself: ``|drop_think``.)

Never trainable, under every policy: the preamble (BOS, fixed preambles) and the generation
prompt.  A default system message (injected by the format) counts as a ``system`` turn.

Named policies (``POLICIES``; ``get_policy(name)``):

===================== ============ ========= ============ ===============
name                  roles        EOT/suffix header       last turn only
===================== ============ ========= ============ ===============
``assistant``         assistant    yes       no           no   (default)
``assistant_no_eot``  assistant    no        no           no
``assistant_header``  assistant    yes       yes          no
``last_turn``         assistant    yes       no           yes
``all``               all roles    yes       yes          no
===================== ============ ========= ============ ===============

``assistant_no_reasoning`` is ``assistant`` with ``train_reasoning`` off.  A custom policy can be
written as ``"roles=user+assistant,eot=yes,header=no,last=no,reasoning=yes"``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Sequence

from tmplc.errors import TmplcError

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.render import Segment

ALL_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Policy:
    """Which segments train.  See the module docstring."""

    name: str = "custom"
    roles: tuple[str, ...] = ("assistant",)
    train_eot: bool = True
    train_header: bool = False
    last_turn_only: bool = False
    train_reasoning: bool = True

    def __post_init__(self) -> None:
        bad = [r for r in self.roles if r not in ALL_ROLES]
        if bad:
            raise TmplcError(f"policy {self.name!r}: unknown role(s) {bad}; roles are {', '.join(ALL_ROLES)}")

    def trainable(self, segments: Sequence["Segment"]) -> list[bool]:
        """Per segment: does its text train under this policy?"""
        roles = self.roles
        last = None
        if self.last_turn_only:
            for s in segments:
                if s.role in roles and s.part != "generation_prompt" and s.part != "preamble":
                    idx = -1 if s.message_index is None else s.message_index
                    last = idx if last is None else max(last, idx)
        out = []
        for s in segments:
            part = s.part
            if part == "preamble" or part == "generation_prompt" or s.role not in roles:
                out.append(False)
                continue
            if last is not None and (-1 if s.message_index is None else s.message_index) != last:
                out.append(False)
                continue
            if part in ("content", "lead", "call", "call_content"):  # the lead ({REPLY}) and tool calls
                # are written by the model too
                out.append(self.train_reasoning or not s.reasoning)
            elif part == "suffix":
                out.append(self.train_eot)
            else:  # prefix
                out.append(self.train_header)
        return out

    def describe(self) -> str:
        bits = [f"roles={'+'.join(self.roles)}", f"eot={'yes' if self.train_eot else 'no'}",
                f"header={'yes' if self.train_header else 'no'}",
                f"last={'yes' if self.last_turn_only else 'no'}"]
        if not self.train_reasoning:
            bits.append("reasoning=no")
        return ",".join(bits)


POLICIES: dict[str, Policy] = {
    "assistant": Policy("assistant"),
    "assistant_no_eot": Policy("assistant_no_eot", train_eot=False),
    "assistant_header": Policy("assistant_header", train_header=True),
    "last_turn": Policy("last_turn", last_turn_only=True),
    "all": Policy("all", roles=ALL_ROLES, train_header=True),
    "assistant_no_reasoning": Policy("assistant_no_reasoning", train_reasoning=False),
}
POLICIES["default"] = replace(POLICIES["assistant"], name="default")

_YES = {"yes", "y", "true", "1", "on"}
_NO = {"no", "n", "false", "0", "off"}


def _flag(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _YES:
        return True
    if v in _NO:
        return False
    raise TmplcError(f"policy: {key}={value!r}: expected yes or no")


def get_policy(policy: "Policy | str | None") -> Policy:
    """A Policy from a Policy, a name in POLICIES, or ``"roles=a+b,eot=yes,header=no,last=no"``."""
    if policy is None:
        return POLICIES["assistant"]
    if isinstance(policy, Policy):
        return policy
    if not isinstance(policy, str):
        raise TmplcError(f"policy must be a Policy or a string, got {type(policy).__name__}")
    if policy in POLICIES:
        return POLICIES[policy]
    if "=" not in policy:
        raise TmplcError(f"unknown policy {policy!r}; named policies: {', '.join(sorted(POLICIES))}, "
                         "or roles=user+assistant,eot=yes,header=no,last=no")
    kw: dict = {}
    for item in policy.split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise TmplcError(f"policy: {item!r} is not key=value")
        key, value = (x.strip() for x in item.split("=", 1))
        if key == "roles":
            roles: Iterable[str] = ALL_ROLES if value == "all" else [r for r in value.replace("|", "+").split("+") if r]
            kw["roles"] = tuple(roles)
        elif key in ("eot", "suffix"):
            kw["train_eot"] = _flag(key, value)
        elif key in ("header", "prefix"):
            kw["train_header"] = _flag(key, value)
        elif key in ("last", "last_turn", "last_turn_only"):
            kw["last_turn_only"] = _flag(key, value)
        elif key in ("reasoning", "train_reasoning"):
            kw["train_reasoning"] = _flag(key, value)
        else:
            raise TmplcError(f"policy: unknown key {key!r} (roles, eot, header, last, reasoning)")
    return Policy(name=policy, **kw)
