"""Hypothesis strategies shared by every test module: conversations and chat formats.

Conversations stress what breaks templates: unicode, newlines and spaces at content edges,
Jinja syntax and special-token text inside content, empty content, with/without system,
1-6 exchanges, and answers with reasoning (``<think>...</think>`` with newlines around the tags,
sometimes several ``</think>``, sometimes no ``<think>``), which the reasoning rules act on.
"""

from __future__ import annotations

from hypothesis import strategies as st

from dataclasses import replace

from tmplc.ir import (DROP_THINK, ChatFormat, ContentRule, DateToken, FinalAnswer, Metadata, SpecialToken, Structure, SystemBlock,
                      Text, ThinkBlock, Turn, fragment)

NASTY = ["{{ x }}", "{% if %}", "{#", "<|eot_id|>", "<|im_end|>", "</s>", "<s>", "[INST]",
         "<start_of_turn>", "\\", "'", '"', "\n", "\n\n", " ", "\t", "}}", "{", "é", "日本", "🙂",
         "<think>", "</think>"]

# what reasoning rules look at: the newlines and whitespace around <think> and </think>
_think_gap = st.sampled_from(["", "", "\n", "\n", "\n\n", " ", " \n", "\n ", "\t"])
_think_words = st.one_of(st.sampled_from(["", "r", "hm, 2+2", "答え", "🙂", " x ", "\u3000y", "<think>", "}}"]),
                         st.text(max_size=5))


@st.composite
def reasoning_text(draw):
    """An answer with reasoning: ``[<think>]reasoning</think>answer``, newlines around the tags,
    sometimes more ``</think>`` (which ``|drop_think`` and ``|drop_think_first`` tell apart)."""
    parts = [draw(_think_gap)]
    if draw(st.integers(0, 3)):  # R1-style answers start right in the reasoning: no <think>
        parts += ["<think>", draw(_think_gap)]
    parts += [draw(_think_words), draw(_think_gap), "</think>", draw(_think_gap), draw(_think_words)]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        parts += [draw(_think_gap), "</think>", draw(_think_gap), draw(_think_words)]
    parts.append(draw(_think_gap))
    return "".join(parts)


_unreasoned = (
    st.just(""),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=6)), max_size=6).map("".join),
)
# contents without the reasoning shape (NASTY still puts a <think> or </think> in some)
unreasoned_text = st.one_of(*_unreasoned)
content_text = st.one_of(*_unreasoned, reasoning_text())

# "plain" content: no whitespace at the edges and no special-token-like text (for comparisons
# against real templates that trim or special-case some strings)
plain_text = st.text(st.characters(whitelist_categories=("L", "N", "P", "Zs"), blacklist_characters="<>{}"),
                     min_size=1, max_size=30).map(str.strip).filter(bool)


@st.composite
def conversations(draw, text=content_text, system: bool | None = None, min_exchanges: int = 1,
                  max_exchanges: int = 6, end_with_assistant: bool | None = None):
    """A list of messages: optional system, then user/assistant exchanges."""
    n = draw(st.integers(min_exchanges, max_exchanges))
    msgs = []
    has_system = draw(st.booleans()) if system is None else system
    if has_system:
        msgs.append({"role": "system", "content": draw(text)})
    for _ in range(n):
        msgs.append({"role": "user", "content": draw(text)})
        msgs.append({"role": "assistant", "content": draw(text)})
    ending = draw(st.booleans()) if end_with_assistant is None else end_with_assistant
    if not ending:
        msgs.pop()
    return msgs


_bits = st.sampled_from(["\n", "\n\n", " ", ":", "### ", "<|", "|>", "[", "]", "{", "}", "</s>", "x", "\t"])


def _frag(required: str = "", allow_tokens: bool = True):
    piece = st.one_of(_bits.map(Text), st.sampled_from([SpecialToken("BOS"), SpecialToken("EOS")])) \
        if allow_tokens else _bits.map(Text)
    return st.lists(piece, max_size=4).map(lambda ps: fragment([Text(required)] + ps if required else ps))


_sides = st.sampled_from(["both", "both", "left", "right"])
#: when an empty system message counts as none ({SYSTEM|nonempty}, |nonblank) and what it renders (|empty_omitted)
_empty_system = st.sampled_from([{}, {}, {"skip_empty": True}, {"skip_empty": True},
                                 {"skip_empty": True, "empty_after_trim": True}, {"skip_empty": True, "empty_omitted": True},
                                 {"skip_empty": True, "empty_after_trim": True, "empty_omitted": True}])
# {PROMPT=...}: what reasoning templates add to the generation prompt only
_prompt_only = st.one_of(st.just(""), st.just(""), st.sampled_from(["<think>\n", "<think>", " ", "\n\n"]))


#: {DATE=...} formats of generated layouts: Ollama carries the ISO ones (its currentDate), every
#: other target all of them
DATE_FORMATS = ("%Y-%m-%d", "%d %b %Y", "%B %d, %Y", "%A", "Today: %Y-%m-%d", "%-d.%m.%y")


def _with_date(frag, date: DateToken, at: int):
    """``frag`` with ``date`` inserted after the first ``at`` characters of its leading text (0: at
    the start; clamped to that text, so role markers such as "U:" can stay first)."""
    if frag and isinstance(frag[0], Text):
        head = frag[0].value
        at = min(at, len(head))
        return fragment([Text(head[:at]), date, Text(head[at:]), *frag[1:]])
    return fragment([date, *frag]) if at == 0 else fragment([*frag, date])


@st.composite
def dated(draw, structure: Structure) -> Structure:
    """Sometimes (about one layout in six) put a {DATE=...} in the preamble, the system prefix or
    the user prefix, where chat templates put today's date."""
    where = draw(st.one_of(st.just(""), st.just(""), st.just(""), st.sampled_from(["preamble", "system", "user"])))
    if not where or (where == "system" and structure.system is None):
        return structure
    date = DateToken(draw(st.sampled_from(DATE_FORMATS)))
    if where == "preamble":
        return replace(structure, preamble=_with_date(structure.preamble, date, draw(st.integers(0, 8))))
    if where == "system":
        sb = structure.system
        return replace(structure, system=replace(sb, prefix=_with_date(sb.prefix, date, draw(st.integers(5, 9)))))
    u = structure.user
    return replace(structure, user=replace(u, prefix=_with_date(u.prefix, date, draw(st.integers(2, 8)))))


@st.composite
def structures(draw, dates: bool = True, reasoning: bool | None = None):
    """Random layouts that a spec can express (role markers keep user and assistant distinct);
    ``dates``: sometimes with a {DATE=...} (see :func:`dated`); ``reasoning``: True: always draw
    the answer rules of reasoning templates (:func:`answer_rules`), None: about half the time."""
    st_ = draw(_structures(reasoning))
    return draw(dated(st_)) if dates else st_


# answer rules of reasoning templates (Turn.drop_think, .lstrip_nl, .trim_first, .final)
_drops = st.sampled_from(("", "") + DROP_THINK)  # "" three times in nine
THINK_TEXTS = ["", "<think>\n", "<think>", "\n</think>\n\n", "</think>", "[", "\n"]
#: what a block renders without reasoning ({ELSE}: Laguna-XS's "</think>\n"), when not always
ABSENT_TEXTS = ["</think>\n", "<think></think>", "\n"]


@st.composite
def think_blocks(draw) -> ThinkBlock:
    always = draw(st.booleans())
    absent = None if always else draw(st.one_of(st.none(), st.none(), st.sampled_from(ABSENT_TEXTS)))
    hidden = absent is None and not draw(st.integers(0, 4))  # GLM's earlier answers: the block alone
    return ThinkBlock(draw(st.sampled_from(THINK_TEXTS)), draw(st.sampled_from(THINK_TEXTS)), always,
                      draw(st.booleans()), absent, hidden)


#: text before/after a non-empty answer only ({NONEMPTY}: GLM's "\n" before, Laguna-XS's after), sometimes
_around_nonempty = st.sampled_from(["", "", "", "\n", "\n\n", " "])


@st.composite
def final_answers(draw):
    """A final answer's own rule (the second {OUTPUT}'s filters) and sometimes a reasoning block."""
    drop = draw(_drops)
    # |trim_first only with a |drop_think filter: a spec refuses it without one (the IR keeps it
    # with a {THINK} block alone, which to_spec cannot write)
    return FinalAnswer(drop_think=drop, lstrip_nl=draw(st.booleans()), trim=draw(st.booleans()),
                       trim_side=draw(_sides), think=draw(st.one_of(st.none(), think_blocks())),
                       trim_first=bool(drop) and draw(st.booleans()), before_nonempty=draw(_around_nonempty),
                       after_nonempty=draw(_around_nonempty))


#: the answer_rules keys that are ContentRule fields (the others are Turn fields)
RULE_FIELDS = ("drop_think", "lstrip_nl", "trim_first", "think", "before_nonempty", "after_nonempty")


@st.composite
def answer_rules(draw, reasoning: bool | None = None) -> dict:
    """Turn fields of the assistant's content rule: about half the layouts have none (the plain
    layouts every target carries), the others draw every reasoning rule (drop_think over all
    DROP_THINK values, lstrip_nl, trim_first, and the final answer's own rule: sometimes None,
    sometimes a FinalAnswer with its own rule and sometimes a ThinkBlock)."""
    if not (reasoning or (reasoning is None and draw(st.booleans()))):
        return {}
    rules = {"drop_think": draw(_drops), "lstrip_nl": draw(st.booleans()), "trim_first": draw(st.booleans()),
             "final": draw(st.one_of(st.none(), final_answers())),
             # every answer's reasoning block ({THINK} before both {OUTPUT}s: Ling), sometimes
             "think": draw(st.one_of(st.none(), st.none(), think_blocks())),
             "before_nonempty": draw(_around_nonempty), "after_nonempty": draw(_around_nonempty)}
    # the whole turn of an empty answer ({EMPTY}: ByteDance-Seed, DeepSeek), sometimes; decided on the
    # content ({EMPTY|raw}) when a reasoning block is drawn (the IR refuses the rendered test then)
    empty = draw(st.one_of(st.none(), st.none(), _frag("E:")))
    if empty is not None:
        blocks = rules["think"] is not None or (rules["final"] is not None and rules["final"].think is not None)
        rules.update(empty=empty, empty_raw=blocks or draw(st.booleans()))
    return rules


@st.composite
def _structures(draw, reasoning: bool | None = None):
    """Random layouts that a spec can express (role markers keep user and assistant distinct)."""
    user = Turn(prefix=draw(_frag("U:")), suffix=draw(_frag()),
                rule=ContentRule(trim=draw(st.booleans()), trim_side=draw(_sides)))
    # the lead ({REPLY}): text the model writes before the content, e.g. Mistral's " "
    lead = draw(st.one_of(st.just(()), st.just((Text(" "),)), _frag(allow_tokens=False)))
    # the last answer's own ending (gpt-oss's <|return|>, an open last turn): sometimes
    final = draw(st.one_of(st.none(), st.none(), st.none(), st.just(()), _frag()))
    prefix, suffix, trim = draw(_frag("A:")), draw(_frag()), draw(st.booleans())
    side, prompt_only = draw(_sides), draw(_prompt_only)
    rules = draw(answer_rules(reasoning))
    rule = ContentRule(trim=trim, trim_side=side, **{k: rules.pop(k) for k in RULE_FIELDS if k in rules})
    assistant = Turn(prefix=prefix, suffix=suffix, lead=lead, rule=rule, prompt_only=prompt_only,
                     final_suffix=final, **rules)
    if reasoning and not (assistant.drop_think or assistant.lstrip_nl or assistant.final is not None):
        # every rule drawn was a no-op (or normalised away): drop the reasoning at least
        assistant = assistant.changed(drop_think=draw(st.sampled_from(DROP_THINK[1:])))
    kind = draw(st.sampled_from(["none", "standalone", "first_user"]))
    default = draw(st.one_of(st.none(), st.text(st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)), max_size=8)))
    if kind == "none":
        preamble = draw(_frag())
        system = None
    elif kind == "standalone":
        # any preamble: a fixed text before the system block (GLM's "[gMASK]<sop>") needs a
        # {SPLIT} before the block in the spec; every target renders it before the block
        preamble = draw(st.one_of(st.sampled_from([(), (SpecialToken("BOS"),)]), _frag()))
        # {NOSYSTEM}: text instead of the block without a system message (excludes a default)
        absent = draw(st.one_of(st.none(), st.none(), _frag("N:"))) if default is None else None
        system = SystemBlock(placement="standalone", prefix=draw(_frag("S:", allow_tokens=False)), suffix=draw(_frag()), trim=draw(st.booleans()), default=default, trim_side=draw(_sides), absent=absent, **draw(_empty_system))
    else:
        preamble = draw(_frag())
        system = SystemBlock(placement="first_user", prefix=draw(_frag("<<S>>", allow_tokens=False)), suffix=draw(_frag()), trim=draw(st.booleans()), default=default, trim_side=draw(_sides), **draw(_empty_system))
    # text ending a conversation rendered without the generation prompt ({END}: Phi-3.5's EOS), sometimes
    closing = draw(st.one_of(st.just(()), st.just(()), st.just(()), _frag("Z")))
    # the generation prompt after an answer: as after the final answer, none ({PROMPT|skip_after_answer}:
    # GigaChat, DeepSeek-V3.1), or after the answer rendered as an earlier one (|history_after_answer: gpt-oss)
    after = draw(st.sampled_from(["final", "final", "skip", "history"]))
    # which answers are final: the last message, the last answer (LFM2.5), those after the last user (Qwen3)
    scope = draw(st.sampled_from(["last", "last", "last_answer", "after_user"]))
    # how an answer's reasoning_content is read: newline-stripped (Qwen3), as given (MiniMax-M2),
    # refused (QwQ never reads it); canonical "strip_nl" where the layout renders no reasoning
    given = draw(st.sampled_from(["strip_nl", "strip_nl", "verbatim", "refused"]))
    return Structure(preamble=preamble, system=system, user=user, assistant=assistant, closing=closing,
                     prompt_after_answer=after, final_scope=scope, given_reasoning=given)


def chat_formats(structure_strategy=None):
    """Generated formats (``structure_strategy``: default :func:`structures`, dates included)."""
    return (structures() if structure_strategy is None else structure_strategy).map(
        lambda s: ChatFormat(s, Metadata(name="generated", bos_token="<s>", eos_token="</s>")))


def with_date_format(fmt: ChatFormat, date_format: str) -> ChatFormat:
    """``fmt`` with every ``{DATE=...}`` set to ``date_format``, built in the IR: for target tests
    of formats the spec language refuses (time-of-day conversions), where the target's own
    refusal is what is tested."""
    def fix(frag):
        return None if frag is None else fragment(DateToken(date_format) if isinstance(p, DateToken) else p
                                                  for p in frag)

    s = fmt.structure
    system = s.system and replace(s.system, prefix=fix(s.system.prefix), suffix=fix(s.system.suffix),
                                  absent=fix(s.system.absent))
    new = Structure(preamble=fix(s.preamble), system=system, user=replace(s.user, prefix=fix(s.user.prefix), suffix=fix(s.user.suffix)), assistant=replace(s.assistant, prefix=fix(s.assistant.prefix), lead=fix(s.assistant.lead),
                            suffix=fix(s.assistant.suffix), final_suffix=fix(s.assistant.final_suffix)))
    return replace(fmt, structure=new)
