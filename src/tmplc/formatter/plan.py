"""A compiled per-format encoding plan: the fast path of ``encode_rows`` for the tiktoken backend.

The generic path renders ``Segment`` objects, joins them, finds added tokens with a regex over
the whole row, BPE-encodes the pieces between them and derives labels from byte offsets.  The
plan does the same work with the per-format parts precomputed:

* each template fragment (preamble, system/user/assistant prefix and suffix) is split once at
  the tokenizer's added tokens: its *lead* text (before its first added token), the ids of the
  middle (added tokens and the fixed text between them, BPE-encoded once) and its *tail* text;
* a row is then a few list appends per message: the text between two added tokens (a *run*:
  template lead/tail text plus message content) is BPE-encoded with ``encode_ordinary``, and
  labels are computed per run arithmetically (a run that is all trainable or all masked needs
  no offsets; a mixed run maps its trainable byte intervals to token indices).

It produces exactly the ids and labels of the generic tiktoken path, and is used only when that
is provable:

* compile time: the backend is ``fast.TiktokenBackend``; the surface-length table has no
  negative entry (no unknown token), no NFC check; no added token is a substring of another;
  no added token's proper suffix is a proper prefix of an added token that a template uses (so
  no added-token match can start in a run and reach into a template's added token); the BOS
  token (if any) is an added token whose id the BPE vocabulary never produces; the policy is a
  plain ``Policy`` without ``last_turn_only``; and rendering the format needs no missing token;
* per row: every run is checked for added-token text (a row whose content holds any, or whose
  content forms one with template text, goes to the generic path, which counts it), and any
  message the reference renderer would reject (or render in a way the plan does not model)
  goes to the generic path, which raises or renders exactly as before.

With those conditions the added-token split of the rendered row is exactly the plan's split, so
the ids are the generic path's, and a token's byte span lies inside a trainable span iff it does
inside its run's trainable intervals.  The token byte lengths of a tiktoken encoding sum to the
run's byte length by construction (the ranks and the length table come from the same vocabulary),
so the generic path's per-row sum check always passes for these rows.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from itertools import accumulate
from typing import Any

from tmplc.ir import REASONING_KEYS
from tmplc.render import ROLES

IGNORE = -100

_PLANS: dict[tuple, Any] = {}
_SAFE: dict[int, tuple] = {}
_LOCK = threading.Lock()


def _tokenizer_facts(info, enc) -> tuple | None:
    """(lens list, added dict, vocab-id set) when the tokenizer allows plans, else None (cached)."""
    hit = _SAFE.get(id(info))
    if hit is not None and hit[0] is info:
        return hit[1]
    facts = None
    table = info.surface
    if table is not None and not info.nfc and not bool((table < 0).any()):
        added = dict(enc.added)
        names = list(added)
        ok = all(not (a != b and a in b) for a in names for b in names)
        if ok:
            if info.bos_id is not None:
                if added.get(info.bos_token) != info.bos_id or info.in_model_vocab(info.bos_id):
                    ok = False
            if ok:
                facts = (table.tolist(), added, frozenset(n[0] for n in names if n))
    with _LOCK:
        _SAFE[id(info)] = (info, facts)
    return facts


def _overlaps(t: str, s: str) -> bool:
    """Some non-empty proper suffix of ``t`` is a proper prefix of ``s``."""
    for k in range(1, min(len(t), len(s))):
        if t[-k:] == s[:k]:
            return True
    return False


def _plain(messages) -> bool:
    """Whether ``messages`` is a conversation the plan encodes (anything else: the generic path,
    which reports the error with its message index)."""
    if not isinstance(messages, (list, tuple)):
        return False
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            return False
        role = m.get("role")
        if role not in ROLES or not isinstance(m.get("content"), str) or (role == "system" and i != 0):
            return False
        if m.get("tool_calls") or any(m.get(k) is not None for k in REASONING_KEYS):
            return False  # tool calls and explicit reasoning: the generic path
    return True


class _Frag:
    __slots__ = ("text", "lead", "tail", "special", "mid_ids", "mid_lab", "mid_bos")


class _Slot:
    """A message's content in a compiled run: ``rule.apply(messages[index]['content'])``."""

    __slots__ = ("index", "rule")

    def __init__(self, index: int, rule) -> None:
        self.index, self.rule = index, rule


#: the most conversation shapes (roles + content decisions) one plan compiles
_MAX_SHAPES = 512


class Plan:
    """See the module docstring.  ``encode(messages)`` -> (ids, labels, n_bos, n_trained) or None.

    The plan states no conversation rule: a row's pieces are the reference renderer's own
    :func:`tmplc.render.walk` events, compiled once per conversation *shape* (the roles and the
    walk's content decisions, :func:`tmplc.render.decisions`) into fixed token chunks and content
    slots."""

    def __init__(self, fmt, info, policy, enc, facts) -> None:
        from tmplc.render import MessageError, Segment, fragment_text

        lens, added, firsts = facts
        self.fmt = fmt
        self.lens = lens
        self.added = added
        self.core_encode = enc.core.encode_ordinary
        self.split_re = enc.split_re
        self.firsts = tuple(firsts)
        self.bos_id = info.bos_id
        self.adds_bos = info.adds_bos
        self.bos = info.bos_token or ""
        self.eos = info.eos_token or fmt.meta.eos_token
        self.policy = policy
        self.ok = not fmt.structure.dated  # {DATE}: the generic path renders it
        self._flags: dict[tuple, bool] = {}
        self._frags: dict[tuple, _Frag] = {}
        self._shapes: dict[tuple, Any] = {}
        self._runs: dict[str, list[int]] = {}  # template-only runs
        self._Segment = Segment
        used_specials: set[str] = set()
        if self.ok:
            try:
                for frag in fmt.structure.fragments():
                    fr = self._frag(fragment_text(fmt, frag, self.bos, self.eos), False)
                    if fr.special:
                        used_specials.update(p for k, p in enumerate(self.split_re.split(fr.text)) if k & 1)
            except MessageError:  # a token the tokenizer does not declare: the generic path reports it
                self.ok = False
        # added-token matches must not reach from a run into a template's added token
        for sp in used_specials:
            for t in added:
                if _overlaps(t, sp):
                    self.ok = False

    def _flag(self, role, part) -> bool:
        """The policy's own rule (it depends on role and part only without last_turn_only)."""
        key = (role, part)
        f = self._flags.get(key)
        if f is None:
            f = self._flags[key] = bool(self.policy.trainable([self._Segment("x", role, part, 0, False)])[0])
        return f

    def _frag(self, t: str, f: bool) -> _Frag:
        """Template text ``t`` split once at the tokenizer's added tokens (lead, middle ids, tail)."""
        key = (t, f)
        fr = self._frags.get(key)
        if fr is not None:
            return fr
        fr = _Frag()
        fr.text = t
        parts = self.split_re.split(t) if self.split_re is not None else [t]
        if len(parts) == 1:
            fr.special = False
            fr.lead = fr.tail = ""
            fr.mid_ids, fr.mid_lab, fr.mid_bos = [], [], 0
        else:
            fr.special = True
            fr.lead, fr.tail = parts[0], parts[-1]
            ids: list[int] = []
            for k in range(1, len(parts) - 1):
                p = parts[k]
                if k & 1:
                    ids.append(self.added[p])
                elif p:
                    ids.extend(self.core_encode(p))
            fr.mid_ids = ids
            fr.mid_lab = list(ids) if f else [IGNORE] * len(ids)
            fr.mid_bos = ids.count(self.bos_id) if self.bos_id is not None else 0
        self._frags[key] = fr
        return fr

    # ------------------------------------------------------------------------------------------
    def _has_added(self, text: str) -> bool:
        for c in self.firsts:
            if c in text:
                return self.split_re is not None and self.split_re.search(text) is not None
        return False

    # ------------------------------------------------------------------------------------------
    def _flush_into(self, parts, ids, labels, ntr) -> bool:
        """Encode the run ``parts`` (its non-empty pieces: text, flag, is_content) into ``ids`` and
        ``labels`` (``ntr[0]`` += trained tokens), as ``flush`` of ``_encode_general`` does.
        True: the run holds added-token text (the row goes to the generic path)."""
        if not parts:
            return False
        lens = self.lens
        if len(parts) == 1:
            text, f, c = parts[0]
            content = c
            uniform = True
        else:
            text = "".join([p[0] for p in parts])
            content = False
            uniform = True
            f = parts[0][1]
            for p in parts:
                if p[2]:
                    content = True
                if p[1] != f:
                    uniform = False
        if content:
            if self._has_added(text):
                return True
            r = self.core_encode(text)
        else:
            r = self._runs.get(text)
            if r is None:
                if self._has_added(text):
                    return True
                r = self.core_encode(text)
                if len(self._runs) < 256:
                    self._runs[text] = r
        ids.extend(r)
        if uniform:
            if f:
                labels.extend(r)
                ntr[0] += len(r)
            else:
                labels.extend([IGNORE] * len(r))
            return False
        iv: list[list[int]] = []
        pos = 0
        for t, tf, _ in parts:
            nb = len(t) if t.isascii() else len(t.encode("utf-8"))
            if tf and nb:
                if iv and iv[-1][1] == pos:
                    iv[-1][1] = pos + nb
                else:
                    iv.append([pos, pos + nb])
            pos += nb
        nr = len(r)
        if len(iv) == 1 and iv[0][1] == pos and iv[0][0] <= 64:
            s = iv[0][0]
            cum = 0
            k = 0
            while k < nr and cum < s:
                cum += lens[r[k]]
                k += 1
            labels.extend([IGNORE] * k)
            labels.extend(r[k:])
            ntr[0] += nr - k
            return False
        ends = list(accumulate([lens[x] for x in r]))
        lab = [IGNORE] * nr
        for s, e in iv:
            lo = 0 if s == 0 else bisect_left(ends, s) + 1
            hi = bisect_right(ends, e)
            if hi > lo:
                lab[lo:hi] = r[lo:hi]
                ntr[0] += hi - lo
        labels.extend(lab)
        return False

    def _compile(self, messages) -> list | None:
        """The ops of ``messages``' shape, from the reference walk's events: ``("ids", ids, labels,
        n_trained, n_bos)`` (fixed template tokens), ``("slot", slot, head, tail, flag, empty)`` (a
        run holding one message content between fixed text; ``empty``: the run's ops without it)
        and ``("run", parts)`` (any other run).  None: the shape takes the generic path."""
        from tmplc.render import MessageError, fragment_text, walk

        ops: list = []
        pending: list = []  # the current run: (text or _Slot, flag)

        def fixed(parts) -> tuple | None:
            ids: list[int] = []
            labels: list[int] = []
            acc = [0]
            if self._flush_into([(t, f, False) for t, f in parts if t], ids, labels, acc):
                return None
            return ("ids", ids, labels, acc[0], 0)

        def flush() -> bool:
            slots = [k for k, (t, _) in enumerate(pending) if isinstance(t, _Slot)]
            if not slots:
                op = fixed(pending)
                if op is None:
                    return False
                ops.append(op)
            elif len(slots) == 1:
                k = slots[0]
                head, tail = pending[:k], pending[k + 1:]
                empty = fixed(head + tail)
                ops.append(("slot", pending[k][0], [(t, f, False) for t, f in head if t],
                            [(t, f, False) for t, f in tail if t], pending[k][1], empty))
            else:
                ops.append(("run", list(pending)))
            pending.clear()
            return True

        try:
            for e in walk(self.fmt, messages):
                f = self._flag(e.role, e.part)
                if e.fragment is not None:
                    fr = self._frag(fragment_text(self.fmt, e.fragment, self.bos, self.eos), f)
                    if not fr.special:
                        pending.append((fr.text, f))
                        continue
                    pending.append((fr.lead, f))
                    if not flush():
                        return None
                    ops.append(("ids", fr.mid_ids, fr.mid_lab, len(fr.mid_ids) if f else 0, fr.mid_bos))
                    pending.append((fr.tail, f))
                elif e.rule is not None:
                    pending.append((_Slot(e.index, e.rule), f))
                else:
                    pending.append((e.text, f))
        except MessageError:
            return None
        return ops if flush() else None

    def encode(self, messages) -> tuple | None:
        """(ids, labels, n_bos, n_trained) for one conversation, or None: use the generic path."""
        if not _plain(messages):
            return None
        from tmplc.render import decisions

        key = (tuple(m["role"] for m in messages), decisions(self.fmt, messages))
        ops = self._shapes.get(key, False)
        if ops is False:
            ops = self._compile(messages)
            with _LOCK:
                if len(self._shapes) >= _MAX_SHAPES:
                    self._shapes.clear()
                self._shapes[key] = ops
        if ops is None:
            return None
        ids: list[int] = []
        labels: list[int] = []
        n_bos = 0
        n_tr = 0
        core_encode = self.core_encode
        firsts = self.firsts
        split_re = self.split_re
        acc = [0]
        for op in ops:
            kind = op[0]
            if kind == "ids":
                ids += op[1]
                labels += op[2]
                n_tr += op[3]
                n_bos += op[4]
            elif kind == "slot":
                slot, head, tail, cf, empty = op[1], op[2], op[3], op[4], op[5]
                c = slot.rule.apply(messages[slot.index]["content"])
                if not c:
                    if empty is None:
                        return None
                    ids += empty[1]
                    labels += empty[2]
                    n_tr += empty[3]
                    continue
                if not head and not tail:  # the content alone: one uniform run
                    for ch in firsts:  # _has_added, inlined
                        if ch in c:
                            if split_re is not None and split_re.search(c) is not None:
                                return None
                            break
                    r = core_encode(c)
                    ids += r
                    if cf:
                        labels += r
                        n_tr += len(r)
                    else:
                        labels += [IGNORE] * len(r)
                    continue
                acc[0] = 0
                if self._flush_into(head + [(c, cf, True)] + tail, ids, labels, acc):
                    return None
                n_tr += acc[0]
            else:
                parts = []
                for t, f in op[1]:
                    if isinstance(t, _Slot):
                        t = t.rule.apply(messages[t.index]["content"])
                        if t:
                            parts.append((t, f, True))
                    elif t:
                        parts.append((t, f, False))
                acc[0] = 0
                if self._flush_into(parts, ids, labels, acc):
                    return None
                n_tr += acc[0]
        return ids, labels, n_bos, n_tr


# the layout fields the plan models; a format type with any other field gets no plan
_KNOWN_FIELDS = {
    "Structure": {"preamble", "system", "user", "assistant", "closing", "prompt_after_answer", "final_scope",
                  "tools", "given_reasoning", "refuses_empty_answers"},  # given_reasoning: messages with reasoning take the generic path
    "Turn": {"prefix", "suffix", "lead", "rule", "prompt_only", "final_suffix", "final", "empty", "empty_raw"},
    "ContentRule": {"trim", "trim_side", "drop_think", "lstrip_nl", "trim_first", "think", "before_nonempty",
                    "after_nonempty"},
    "SystemBlock": {"placement", "prefix", "suffix", "trim", "default", "trim_side", "skip_empty", "absent",
                    "empty_after_trim", "empty_omitted"},
}
# fields the plan knows only at these values (others take the generic path); ``prompt_only``
# changes only the generation prompt, which training rows never contain
_PLAN_VALUES = {"trim_side": "both", "skip_empty": False, "drop_think": "", "absent": None, "final_suffix": None,
                "lstrip_nl": False, "final": None, "trim_first": False, "think": None, "empty": None,
                "closing": (), "tools": None, "refuses_empty_answers": False, "before_nonempty": "",
                "after_nonempty": ""}

def _fields_known(fmt) -> bool:
    import dataclasses

    st = fmt.structure
    objs = [("Structure", st), ("Turn", st.user), ("Turn", st.assistant), ("ContentRule", st.user.rule),
            ("ContentRule", st.assistant.rule)]
    if st.system is not None:
        objs.append(("SystemBlock", st.system))
    for kind, obj in objs:
        if type(obj).__name__ != kind or not dataclasses.is_dataclass(obj):
            return False
        if {f.name for f in dataclasses.fields(obj)} - _KNOWN_FIELDS[kind]:
            return False
        if any(getattr(obj, k, v) != v for k, v in _PLAN_VALUES.items()):
            return False
    return True


def get_plan(fmt, info, policy, enc) -> Plan | None:
    """The cached plan for (format, tokenizer, policy), or None when the fast path does not apply."""
    from tmplc.formatter.fast import TiktokenBackend
    from tmplc.formatter.policies import Policy

    if type(enc) is not TiktokenBackend or type(policy) is not Policy or policy.last_turn_only:
        return None
    key = (id(fmt), id(info), policy)
    hit = _PLANS.get(key)
    if hit is not None and hit[0] is fmt and hit[1] is info:
        return hit[2]
    facts = _tokenizer_facts(info, enc) if _fields_known(fmt) else None
    plan = None
    if facts is not None:
        try:
            plan = Plan(fmt, info, policy, enc, facts)
        except Exception:  # pragma: no cover - anything unexpected: the generic path
            plan = None
        if plan is not None and not plan.ok:
            plan = None

    with _LOCK:
        if len(_PLANS) > 64:
            _PLANS.clear()
        _PLANS[key] = (fmt, info, plan)
    return plan
