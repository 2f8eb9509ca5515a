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
            vocab_ids = set((info.spec.get("model") or {}).get("vocab", {}).values())
            if info.bos_id is not None:
                if added.get(info.bos_token) != info.bos_id or info.bos_id in vocab_ids:
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
    return True


class _Frag:
    __slots__ = ("text", "lead", "tail", "special", "mid_ids", "mid_lab", "mid_bos")


class Plan:
    """See the module docstring.  ``encode(messages)`` -> (ids, labels, n_bos, n_trained) or None."""

    def __init__(self, fmt, info, policy, enc, facts) -> None:
        from tmplc.ir import SpecialToken, Text

        lens, added, firsts = facts
        self.lens = lens
        self.core_encode = enc.core.encode_ordinary
        self.split_re = enc.split_re
        self.firsts = tuple(firsts)
        self.bos_id = info.bos_id
        self.adds_bos = info.adds_bos
        bos = info.bos_token or ""
        eos = info.eos_token or fmt.meta.eos_token
        st = fmt.structure
        self.ok = True

        def text(frag) -> str:
            out = []
            for p in frag:
                if not isinstance(p, (SpecialToken, Text)):  # {DATE}: the generic path renders it
                    self.ok = False
                    return ""
                if isinstance(p, SpecialToken):
                    tok = bos if p.name == "BOS" else eos
                    if tok is None:
                        self.ok = False
                        return ""
                    out.append(tok)
                else:
                    out.append(p.value)
            return "".join(out)

        from tmplc.render import Segment

        def flag(role, part) -> bool:
            # the policy's own rule (it depends on role and part only without last_turn_only)
            return bool(policy.trainable([Segment("x", role, part, 0, False)])[0])

        used_specials: set[str] = set()

        def frag(frag_, role, part) -> tuple:
            f = flag(role, part)
            t = text(frag_)
            fr = _Frag()
            fr.text = t
            parts = self.split_re.split(t) if self.split_re is not None else [t]
            if len(parts) == 1:
                fr.special = False
                fr.lead = fr.tail = ""
                fr.mid_ids, fr.mid_lab, fr.mid_bos = [], [], 0
                return fr, f
            fr.special = True
            fr.lead, fr.tail = parts[0], parts[-1]
            ids: list[int] = []
            for k in range(1, len(parts) - 1):
                p = parts[k]
                if k & 1:
                    used_specials.add(p)
                    ids.append(added[p])
                elif p:
                    ids.extend(self.core_encode(p))
            fr.mid_ids = ids
            fr.mid_lab = list(ids) if f else [IGNORE] * len(ids)
            fr.mid_bos = ids.count(self.bos_id) if self.bos_id is not None else 0
            return fr, f

        self.preamble = frag(st.preamble, None, "preamble")
        self.user_pre = frag(st.user.prefix, "user", "prefix")
        self.user_suf = frag(st.user.suffix, "user", "suffix")
        self.asst_pre = frag(st.assistant.prefix, "assistant", "prefix")
        self.asst_suf = frag(st.assistant.suffix, "assistant", "suffix")
        self.asst_lead = frag(st.assistant.lead, "assistant", "lead")
        self.user_trim = st.user.trim
        self.asst_trim = st.assistant.trim
        self.user_flag = flag("user", "content")
        self.asst_flag = flag("assistant", "content")
        self.sys_flag = flag("system", "content")
        sb = st.system
        self.has_system = sb is not None
        if sb is not None:
            self.sys_pre = frag(sb.prefix, "system", "prefix")
            self.sys_suf = frag(sb.suffix, "system", "suffix")
            self.sys_trim = sb.trim
            self.sys_default = sb.default
            self.sys_inline = sb.placement != "standalone"
        # added-token matches must not reach from a run into a template's added token
        for s in used_specials:
            for t in added:
                if _overlaps(t, s):
                    self.ok = False
        self._runs: dict[str, list[int]] = {}  # template-only runs (bounded: pairs of fragments)
        self.prog = self._compile_program() if self.ok else None

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

    def _compile_program(self):
        """Per-role constants for formats whose turns are delimited by added tokens on both sides.

        When every prefix and suffix (the system block's too) holds an added token, the assistant
        lead holds none and a system block is standalone, a row is, per message, a fixed
        *transition* (the previous suffix's middle, the template-only run between the two added
        tokens, this prefix's middle) and one content run (prefix tail + lead + content + suffix
        lead), then a fixed closing part.  Transitions, closings and empty-content runs are
        computed here once, with ``_flush_into`` on exactly the pieces the general path collects,
        so every row gets the general path's output.  None: the format does not have that shape."""
        roles = {"user": (self.user_pre, self.user_suf, None, self.user_flag, self.user_trim),
                 "assistant": (self.asst_pre, self.asst_suf, self.asst_lead, self.asst_flag, self.asst_trim)}
        if self.has_system:
            if self.sys_inline:
                return None
            roles["system"] = (self.sys_pre, self.sys_suf, None, self.sys_flag, self.sys_trim)
        for pre, suf, lead, _, _ in roles.values():
            if not pre[0].special or not suf[0].special or (lead is not None and lead[0].special):
                return None

        def mid(fr_f):
            fr, f = fr_f
            return list(fr.mid_ids), list(fr.mid_lab), (len(fr.mid_ids) if f else 0), fr.mid_bos

        def piece(text, f):
            return [(text, f, False)] if text else []

        def join(*chunks):
            """chunks: ("mid", (ids, labels, ntr, nbos)) or ("run", parts); None if a run fails."""
            ids: list[int] = []
            labels: list[int] = []
            ntr, nbos = 0, 0
            for kind, x in chunks:
                if kind == "mid":
                    ids += x[0]
                    labels += x[1]
                    ntr += x[2]
                    nbos += x[3]
                else:
                    acc = [0]
                    if self._flush_into(list(x), ids, labels, acc):
                        return None
                    ntr += acc[0]
            return ids, labels, ntr, nbos

        pfr, pf = self.preamble
        if pfr.special:
            start_chunks = [("run", piece(pfr.lead, pf)), ("mid", mid(self.preamble))]
            start_pend = piece(pfr.tail, pf)
        else:
            start_chunks = []
            start_pend = piece(pfr.text, pf)
        # states: "start" (after the preamble) or a role (after its message)
        pend = {"start": (start_chunks, start_pend)}
        for role, (pre, suf, lead, cf, trim) in roles.items():
            pend[role] = ([("mid", mid(suf))], piece(suf[0].tail, suf[1]))
        trans = {}
        for prev, (chunks, pp) in pend.items():
            for role, (pre, suf, lead, cf, trim) in roles.items():
                trans[(prev, role)] = join(*chunks, ("run", pp + piece(pre[0].lead, pre[1])), ("mid", mid(pre)))
        final = {prev: join(*chunks, ("run", pp)) for prev, (chunks, pp) in pend.items()}
        progs = {}
        for role, (pre, suf, lead, cf, trim) in roles.items():
            head = piece(pre[0].tail, pre[1])
            if lead is not None:
                head += piece(lead[0].text, lead[1])
            tail = piece(suf[0].lead, suf[1])
            empty = join(("run", head + tail))
            head_text = "".join(p[0] for p in head)
            tail_text = "".join(p[0] for p in tail)
            s = 0
            if len({p[1] for p in head + tail} | {cf}) == 1:
                mode = 1 if cf else 0  # one uniform run
            elif head and not any(p[1] for p in head) and cf and all(p[1] for p in tail) \
                    and len(head_text.encode("utf-8")) <= 64:
                mode = 2  # a masked head, then trainable to the end
                s = len(head_text.encode("utf-8"))
            else:
                mode = 3  # any other mixed run: the general computation
            progs[role] = (head_text, tail_text, mode, s, trim, head, tail, cf, empty)
        return trans, final, progs

    def encode(self, messages) -> tuple | None:
        """(ids, labels, n_bos, n_trained) for one conversation, or None: use the generic path."""
        prog = self.prog
        if prog is None:
            return self._encode_general(messages)
        if not _plain(messages):
            return None
        n = len(messages)
        trans, final, progs = prog
        seq = messages
        if n and messages[0]["role"] == "system":
            if not self.has_system:
                return None
        elif self.has_system and self.sys_default is not None:
            seq = [{"role": "system", "content": self.sys_default}]
            seq.extend(messages)
        ids: list[int] = []
        labels: list[int] = []
        n_bos = 0
        n_tr = 0
        prev = "start"
        core_encode = self.core_encode
        firsts = self.firsts
        split_re = self.split_re
        lens = self.lens
        for m in seq:
            role = m["role"]
            t = trans[(prev, role)]
            if t is None:
                return None
            ids += t[0]
            labels += t[1]
            n_tr += t[2]
            n_bos += t[3]
            head_text, tail_text, mode, s, trim, head, tail, cf, empty = progs[role]
            c = m["content"]
            if trim:
                c = c.strip()
            if not c:
                if empty is None:
                    return None
                ids += empty[0]
                labels += empty[1]
                n_tr += empty[2]
            else:
                text = head_text + c + tail_text
                for ch in firsts:  # _has_added, inlined
                    if ch in text:
                        if split_re is not None and split_re.search(text) is not None:
                            return None
                        break
                if mode == 3:
                    acc = [0]
                    self._flush_into(head + [(c, cf, True)] + tail, ids, labels, acc)
                    n_tr += acc[0]
                else:
                    r = core_encode(text)
                    ids += r
                    if mode == 1:
                        labels += r
                        n_tr += len(r)
                    elif mode == 0:
                        labels += [IGNORE] * len(r)
                    else:
                        nr = len(r)
                        cum = 0
                        k = 0
                        while k < nr and cum < s:
                            cum += lens[r[k]]
                            k += 1
                        labels += [IGNORE] * k
                        labels += r[k:]
                        n_tr += nr - k
            prev = role
        t = final[prev]
        if t is None:
            return None
        ids += t[0]
        labels += t[1]
        return ids, labels, n_bos + t[3], n_tr + t[2]

    def _encode_general(self, messages) -> tuple | None:
        """``encode`` for a plan without a per-role program (the per-fragment path)."""
        if not _plain(messages):
            return None
        n = len(messages)

        ids: list[int] = []
        labels: list[int] = []
        parts: list = []  # current run: (text, flag, is_content)
        state = [0, 0, False]  # n_bos, n_trained, failed
        def flush() -> None:
            if not parts:
                return
            ntr = [0]
            if self._flush_into(parts, ids, labels, ntr):
                state[2] = True
            state[1] += ntr[0]
            parts.clear()

        def add_frag(fr_f) -> None:
            fr, f = fr_f
            if not fr.special:
                if fr.text:
                    parts.append((fr.text, f, False))
                return
            if fr.lead:
                parts.append((fr.lead, f, False))
            flush()
            ids.extend(fr.mid_ids)
            labels.extend(fr.mid_lab)
            state[0] += fr.mid_bos
            if f:
                state[1] += len(fr.mid_ids)
            if fr.tail:
                parts.append((fr.tail, f, False))

        add_frag(self.preamble)
        start = 0
        sys_content = None
        sys_index = None
        if n and messages[0]["role"] == "system":
            if not self.has_system:
                return None
            sys_content, sys_index, start = messages[0]["content"], 0, 1
        elif self.has_system and self.sys_default is not None:
            sys_content = self.sys_default

        def emit_system() -> None:
            c = sys_content.strip() if self.sys_trim else sys_content
            add_frag(self.sys_pre)
            if c:
                parts.append((c, self.sys_flag, True))
            add_frag(self.sys_suf)

        inline_pending = False
        if sys_content is not None:
            if self.sys_inline:
                inline_pending = True
            else:
                emit_system()
        user_pre, user_suf, asst_pre, asst_suf = self.user_pre, self.user_suf, self.asst_pre, self.asst_suf
        asst_lead = self.asst_lead
        uf, af, ut, at = self.user_flag, self.asst_flag, self.user_trim, self.asst_trim
        for i in range(start, n):
            m = messages[i]
            c = m["content"]
            if m["role"] == "user":
                add_frag(user_pre)
                if inline_pending:
                    emit_system()
                    inline_pending = False
                if ut:
                    c = c.strip()
                if c:
                    parts.append((c, uf, True))
                add_frag(user_suf)
            else:  # assistant (system only at 0: checked above)
                if inline_pending:
                    return None
                add_frag(asst_pre)
                add_frag(asst_lead)
                if at:
                    c = c.strip()
                if c:
                    parts.append((c, af, True))
                add_frag(asst_suf)
            if state[2]:
                return None
        if inline_pending and sys_index is not None:
            return None
        flush()
        if state[2]:
            return None
        return ids, labels, state[0], state[1]


# the layout fields the plan models; a format type with any other field gets no plan
_KNOWN_FIELDS = {
    "Structure": {"preamble", "system", "user", "assistant", "closing", "prompt_after_answer", "final_scope"},
    "Turn": {"prefix", "suffix", "lead", "rule", "prompt_only", "final_suffix", "final", "empty", "empty_raw"},
    "ContentRule": {"trim", "trim_side", "drop_think", "lstrip_nl", "trim_first", "think"},
    "SystemBlock": {"placement", "prefix", "suffix", "trim", "default", "trim_side", "skip_empty", "absent"},
}
# fields the plan knows only at these values (others take the generic path); ``prompt_only``
# changes only the generation prompt, which training rows never contain
_PLAN_VALUES = {"trim_side": "both", "skip_empty": False, "drop_think": "", "absent": None, "final_suffix": None,
                "lstrip_nl": False, "final": None, "trim_first": False, "think": None, "empty": None,
                "closing": ()}

PROBES = (
    [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi\n"},
     {"role": "assistant", "content": "\nHello! "}, {"role": "user", "content": ""},
     {"role": "assistant", "content": "Bye 日本 🙂"}],
    [{"role": "user", "content": "  two  "}, {"role": "assistant", "content": ""},
     {"role": "assistant", "content": " x"}, {"role": "user", "content": "y"}],
    [{"role": "assistant", "content": "first"}, {"role": "user", "content": "q"},
     {"role": "assistant", "content": "a\n\n"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "v"}],
    [{"role": "user", "content": "only a user"}],
    [],
)


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


def get_plan(fmt, info, policy, enc, check=None) -> Plan | None:
    """The cached plan for (format, tokenizer, policy), or None when the fast path does not apply.

    ``check(plan)``, when given, runs once on a new plan (the formatter compares it with the
    generic path on ``PROBES``); a plan that fails it is not used."""
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
    if plan is not None and (not _fields_known(fmt) or (check is not None and not check(plan))):
        plan = None
    with _LOCK:
        if len(_PLANS) > 64:
            _PLANS.clear()
        _PLANS[key] = (fmt, info, plan)
    return plan
