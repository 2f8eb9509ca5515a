"""The one IR: an immutable description of a chat format.

A format is a preamble, an optional system block, and a user and an assistant turn,
each turn being ``prefix + content + suffix``.  Every literal character of a rendered
conversation belongs to exactly one of these pieces, which is what makes loss masks
and "no dangling newline" checks exact.
"""

from __future__ import annotations

import datetime as _dt
import json as _json
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence, Union

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.render import Segment

Role = Literal["system", "user", "assistant"]
Placement = Literal["standalone", "first_user"]
Side = Literal["both", "left", "right"]

# the spec filter for each trim side, and back
TRIM_FILTERS: dict[str, Side] = {"trim": "both", "lstrip": "left", "rstrip": "right"}
TRIM_FILTER_OF: dict[Side, str] = {v: k for k, v in TRIM_FILTERS.items()}


THINK_END = "</think>"
THINK_START = "<think>"

#: ``Turn.drop_think`` values: which ``</think>`` ends the reasoning, and how the answer after it
#: is cleaned when the content has one (the ``if '</think>' in content`` of reasoning templates)
DROP_THINK = ("", "last", "first", "last_lstrip_nl", "last_strip_nl", "last_trim", "first_lstrip_nl")
#: What ``add_generation_prompt`` does after a conversation's last answer (``Structure.prompt_after_answer``).
PROMPT_AFTER_ANSWER = ("final", "skip", "history")
#: Which answers are *final* (their own rule and ending) (``Structure.final_scope``).
FINAL_SCOPES = ("last", "last_answer", "after_user", "after_user_reasoning")
#: How a format reads an answer's explicit reasoning (``reasoning_content``/``thinking``)
#: (``Structure.given_reasoning``).
GIVEN_REASONING = ("strip_nl", "verbatim", "trim", "refused")


def drop_reasoning(text: str, mode: str) -> str:
    """``text`` without its reasoning, as ``Turn.drop_think`` ``mode`` renders it.

    ``"last"``/``"first"``: ``text.split('</think>')[-1]`` / ``text.split('</think>', 1)[-1]``;
    ``"last_lstrip_nl"`` / ``"last_strip_nl"`` / ``"last_trim"``: when ``text`` contains ``</think>``,
    the text after the last one (``"first_lstrip_nl"``: the first one) with ``.lstrip('\\n')`` / ``.strip('\\n')`` / ``.strip()`` (Qwen3,
    MiniMax-M2, LFM2.5); ``text`` unchanged otherwise."""
    if not mode or THINK_END not in text:
        return text
    if mode == "first":
        return text.split(THINK_END, 1)[1]
    if mode == "first_lstrip_nl":
        return text.split(THINK_END, 1)[1].lstrip("\n")
    answer = text.split(THINK_END)[-1]
    if mode == "last_lstrip_nl":
        return answer.lstrip("\n")
    if mode == "last_strip_nl":
        return answer.strip("\n")
    if mode == "last_trim":
        return answer.strip()
    return answer


def reasoning_of(text: str) -> str:
    """The reasoning of an answer, as reasoning templates extract it: ``''`` without ``</think>``,
    else ``text.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n')``."""
    if THINK_END not in text:
        return ""
    return text.split(THINK_END)[0].rstrip("\n").split(THINK_START)[-1].lstrip("\n")


def apply_trim(content: str, trim: bool, side: Side = "both") -> str:
    """Content as a turn renders it: Python ``str.strip``/``lstrip``/``rstrip`` (Unicode whitespace)."""
    if not trim:
        return content
    if side == "left":
        return content.lstrip()
    if side == "right":
        return content.rstrip()
    return content.strip()


@dataclass(frozen=True)
class Text:
    """Literal text."""

    value: str


@dataclass(frozen=True)
class SpecialToken:
    """The tokenizer's BOS or EOS token string (``{BOS}`` / ``{EOS}`` in a spec)."""

    name: Literal["BOS", "EOS"]


@dataclass(frozen=True)
class DateToken:
    """Today's date, formatted with ``strftime(format)`` (``{DATE=%d %b %Y}`` in a spec).

    The date is an explicit variable of the format: ``render(..., date=...)`` (default: today,
    as HF's ``strftime_now``), ``ChatFormat.with_date(d)`` fixes it (e.g. for training data)."""

    format: str

    def render(self, date: "_dt.date | None" = None) -> str:
        return (date or _dt.date.today()).strftime(self.format)


Piece = Union[Text, SpecialToken, DateToken]
Fragment = tuple[Piece, ...]


def fragment(pieces: Iterable[Piece | str]) -> Fragment:
    """Normalise pieces: strings become Text, adjacent Text merge, empty Text vanish (linear: the
    text of a run of pieces is joined once)."""
    out: list[Piece] = []
    run: list[str] = []

    def close() -> None:
        if run:
            text = "".join(run)
            if text:
                out.append(Text(text))
            run.clear()

    for p in pieces:
        if isinstance(p, str):
            run.append(p)
        elif isinstance(p, Text):
            run.append(p.value)
        else:
            close()
            out.append(p)
    close()
    return tuple(out)


def _set(obj: Any, **values: Any) -> None:
    """Normalise fields of a frozen dataclass in its ``__post_init__`` (the one place that does)."""
    for name, value in values.items():
        object.__setattr__(obj, name, value)


@dataclass(frozen=True)
class ThinkBlock:
    """The reasoning block an answer renders before its content (``{THINK}...{/THINK}``):
    ``open + reasoning + close``, the reasoning being :func:`reasoning_of` the message content
    (``|trim``-med when ``trim``).  Rendered only when the reasoning is not empty, or ``always``
    (Qwen3: ``<think>\\n\\n</think>\\n\\n`` before a final answer without reasoning).  Without
    reasoning, ``absent`` is rendered in its place when set (``{THINK}...{ELSE}...{/THINK}``;
    Laguna-XS: ``</think>\\n``); ``always`` is the case ``absent == open + close``.  A ``hidden``
    block never shows the reasoning: every answer renders ``open + close`` (``{THINK|hidden}``;
    GLM-4.6's earlier answers: ``\\n<think></think>`` whatever their reasoning)."""

    open: str = ""
    close: str = ""
    always: bool = False
    trim: bool = False
    absent: str | None = None
    hidden: bool = False

    def __post_init__(self) -> None:  # one value per meaning
        if self.hidden:
            _set(self, open=self.open + self.close, close="", always=True, trim=False)
            if self.absent is not None and self.absent != self.open:
                raise ValueError("a hidden reasoning block renders the same text for every answer; it has no "
                                 "`absent` text of its own")
            _set(self, absent=None)
            return
        if self.absent is not None and self.always and self.absent != self.open + self.close:
            raise ValueError("a reasoning block is either always rendered (its open and close text without "
                             "reasoning) or renders its `absent` text without reasoning, not both")
        if self.absent == self.open + self.close:
            _set(self, always=True, absent=None)
        elif self.absent == "":
            _set(self, absent=None)

    def without_reasoning(self) -> str:
        """What the block renders for an answer without reasoning."""
        if self.absent is not None:
            return self.absent
        return self.open + self.close if self.always else ""

    def render(self, content: str, reasoning: str | None = None) -> str:
        """The block for an answer ``content``; ``reasoning`` (a message's explicit reasoning, as
        the format reads it: :meth:`Structure.given`) replaces :func:`reasoning_of` the content."""
        r = reasoning_of(content) if reasoning is None else reasoning
        if not r or self.hidden:
            return self.without_reasoning()
        return self.open + (r.strip() if self.trim else r) + self.close


@dataclass(frozen=True, kw_only=True)
class ContentRule:
    """How a turn renders a message's content: the one value object for the content rule of every
    turn and of the final answer (:attr:`Turn.rule`, :attr:`Turn.final`).

    ``trim`` strips whitespace: both ends (``str.strip``, ``{INPUT|trim}``), or only the
    ``trim_side`` ``"left"`` (``|lstrip``) or ``"right"`` (``|rstrip``).  Answers only:
    ``drop_think`` keeps the answer after ``</think>`` (``{OUTPUT|drop_think}`` and its variants,
    see :func:`drop_reasoning`); ``lstrip_nl`` (``|lstrip_nl``) then removes leading ``\\n``; both
    apply before the trim, unless ``trim_first`` (``|trim_first``: Qwen3.5 trims a message before
    it splits off the reasoning); ``think`` is the reasoning block rendered before the content
    (:class:`ThinkBlock`, ``{THINK}...{/THINK}``); ``before_nonempty``/``after_nonempty`` is text
    rendered right before/after the content only when the content (by this rule) is not empty
    (``{NONEMPTY}...{/NONEMPTY}`` before/after an ``{OUTPUT}``; Laguna-XS: ``content.strip() ~ "\\n"``,
    GLM-4.6: ``"\\n" + content.strip()``, only for a non-blank answer).

    Normalised once, here: one value per meaning (a strip that a later step repeats is dropped:
    ``|drop_think_lstrip_nl|lstrip_nl`` is ``|drop_think|lstrip_nl``)."""

    trim: bool = False
    trim_side: Side = "both"
    drop_think: str = ""
    lstrip_nl: bool = False
    trim_first: bool = False
    think: ThinkBlock | None = None
    before_nonempty: str = ""
    after_nonempty: str = ""

    def __post_init__(self) -> None:
        if self.drop_think not in DROP_THINK:
            raise ValueError(f"drop_think must be one of {DROP_THINK}, got {self.drop_think!r}")
        if self.trim_first and not (self.trim and (self.drop_think or self.think is not None)):
            _set(self, trim_first=False)
        if not self.trim and self.trim_side != "both":
            _set(self, trim_side="both")
        plain = {"last_lstrip_nl": "last", "first_lstrip_nl": "first"}
        if self.trim and self.trim_first and (self.trim_side == "right" or self.drop_think == "last_trim"):
            _set(self, trim_first=False)  # a trailing (or the answer's own) trim commutes with the drop
        if self.trim and self.trim_first and self.trim_side in ("both", "left") and self.drop_think:
            # trimmed first, an answer without </think> has no leading newline: lstrip_nl acts only on
            # the text after </think>, as the drop's own left strip does
            if self.lstrip_nl:
                _set(self, lstrip_nl=False, drop_think={"last": "last_lstrip_nl", "first": "first_lstrip_nl"}.get(
                    self.drop_think, self.drop_think))
            if self.trim_side == "both" and self.drop_think == "last_strip_nl":
                _set(self, drop_think="last_lstrip_nl")  # the answer's end is trimmed already
            return
        if self.trim and self.trim_side == "right" and self.drop_think == "last_strip_nl":
            _set(self, drop_think="last_lstrip_nl")  # its trailing newlines go with the trailing whitespace
        if self.trim and not self.trim_first and self.trim_side in ("both", "left"):
            if self.trim_side == "both":
                plain = dict(plain, last_strip_nl="last", last_trim="last")
            _set(self, lstrip_nl=False, drop_think=plain.get(self.drop_think, self.drop_think))
        elif self.lstrip_nl:
            _set(self, drop_think=plain.get(self.drop_think, self.drop_think))

    @property
    def identity(self) -> bool:
        """Whether the rule renders every content as sent."""
        return self == IDENTITY

    @property
    def answer_only(self) -> bool:
        """Whether the rule uses an answer-only step (reasoning, ``lstrip_nl``, text around a non-empty
        answer), beyond a trim."""
        return bool(self.drop_think or self.lstrip_nl or self.think is not None or self.wraps_nonempty)

    def content(self, text: str, reasoning: str | None = None) -> str:
        """``text`` without the reasoning block: reasoning dropped, then ``lstrip_nl``, then the
        whitespace trim (first of all when ``trim_first``), then the text around it if not empty.
        With an explicit ``reasoning`` (the message's ``reasoning_content``) the content holds no
        reasoning: nothing is dropped."""
        if self.trim_first:
            text = apply_trim(text, self.trim, self.trim_side)
        if reasoning is None:
            text = drop_reasoning(text, self.drop_think)
        if self.lstrip_nl:
            text = text.lstrip("\n")
        text = text if self.trim_first else apply_trim(text, self.trim, self.trim_side)
        return self.before_nonempty + text + self.after_nonempty if text else text

    @property
    def wraps_nonempty(self) -> bool:
        """Whether text goes around a non-empty answer only (``before_nonempty``/``after_nonempty``)."""
        return bool(self.before_nonempty or self.after_nonempty)

    def apply(self, text: str, reasoning: str | None = None) -> str:
        """``text`` as a turn with this rule renders it: the reasoning block (of the content as
        trimmed first, with ``trim_first``; or of the explicit ``reasoning``), then :meth:`content`."""
        if self.think is None:
            return self.content(text, reasoning)
        seen = apply_trim(text, self.trim, self.trim_side) if self.trim_first else text
        return self.think.render(seen, reasoning) + self.content(text, reasoning)

    @property
    def renders_reasoning(self) -> bool:
        """Whether the rule does anything with reasoning (shows it in a block, or drops it)."""
        return bool(self.drop_think) or self.think is not None


IDENTITY = ContentRule()
_RULE_FIELDS = frozenset(f.name for f in fields(ContentRule))

#: The final answer's own rule is a :class:`ContentRule` (the name the IR used before).
FinalAnswer = ContentRule


@dataclass(frozen=True, kw_only=True)
class Turn:
    """``prefix + lead + content + suffix`` for one role; the content renders by ``rule``
    (:class:`ContentRule`: trim, reasoning, ...).

    ``lead`` (assistant only; ``{REPLY}`` in a spec) is template text that the *model* emits
    before the content: the generation prompt is ``prefix`` alone, and ``lead`` trains with the
    content.  Mistral's ``[/INST]`` + `` answer``: the space is the lead, because SentencePiece
    makes `` answer`` one token (``▁answer``) that the model generates after ``[/INST]``.

    ``prompt_only`` (assistant only; ``{PROMPT=...}`` in a spec) is text the *generation prompt*
    adds after the prefix that rendered turns never contain: reasoning templates that open a
    ``<think>`` block in the prompt but show answers without it (DeepSeek-R1: the prompt ends
    ``<｜Assistant｜><think>\\n``, a history turn is ``<｜Assistant｜>answer``).  A model trained on
    the rendered turns never sees it: :func:`tmplc.lint.caveats` reports that.

    ``final_suffix`` (assistant only; a ``{SPLIT}`` after the first ``{OUTPUT}`` in a spec): the
    suffix of a *final* answer, when it differs from ``suffix`` (gpt-oss ends the final answer
    with ``<|return|>``, others leave it open).

    ``final`` (assistant only): the content rule of a final answer when it differs from ``rule``
    (the second ``{OUTPUT}``'s filters and ``{THINK}`` block); normalised to None when it is the same.

    ``empty`` (assistant only; ``{EMPTY}...{/EMPTY}`` after the last turn in a spec): the whole
    turn an *empty* answer renders instead of prefix, lead, content and suffix (templates that
    render an assistant message without content as a bare header, or as an empty tool-call
    block).  An answer is empty when it renders as ``""`` by its rule, or, with ``empty_raw``
    (``{EMPTY|raw}``), when the message content is ``""``.
    """

    prefix: Fragment = ()
    suffix: Fragment = ()
    lead: Fragment = ()
    rule: ContentRule = IDENTITY
    prompt_only: str = ""
    final_suffix: Fragment | None = None
    final: ContentRule | None = None
    empty: Fragment | None = None
    empty_raw: bool = False

    def __post_init__(self) -> None:  # one value per meaning
        final_think = self.final is not None and self.final.think is not None
        if self.empty is not None and self.rule.think is None and self.final_suffix is None and not final_think \
                and tuple(self.empty) == fragment(self.prefix + self.lead + self.suffix):
            _set(self, empty=None)  # what an empty answer renders anyway
        if self.empty is None or (self.rule.identity and (self.final is None or self.final.identity)):
            _set(self, empty_raw=False)  # "" content and "" answer are the same
        if self.empty is not None and not self.empty_raw and (self.rule.think is not None or final_think):
            raise ValueError("an empty-answer turn ({EMPTY}) decided on the rendered answer cannot go with "
                             "a reasoning block; use {EMPTY|raw} (decided on the message content)")
        if self.final_suffix is not None and tuple(self.final_suffix) == tuple(self.suffix):
            _set(self, final_suffix=None)
        if self.final == self.rule:
            _set(self, final=None)

    # read-only views of the rule (what a spec filter says about this turn)
    @property
    def trim(self) -> bool:
        return self.rule.trim

    @property
    def trim_side(self) -> Side:
        return self.rule.trim_side

    @property
    def drop_think(self) -> str:
        return self.rule.drop_think

    @property
    def lstrip_nl(self) -> bool:
        return self.rule.lstrip_nl

    @property
    def trim_first(self) -> bool:
        return self.rule.trim_first

    @property
    def think(self) -> ThinkBlock | None:
        return self.rule.think

    def changed(self, **changes: Any) -> "Turn":
        """A copy with ``changes``: fields of the turn, or of its :class:`ContentRule` (``trim=True``)."""
        rule = {k: changes.pop(k) for k in list(changes) if k in _RULE_FIELDS}
        return replace(self, rule=replace(self.rule, **rule) if rule else self.rule, **changes)

    def content(self, text: str, final: bool = False) -> str:
        """``text`` as this turn renders it; ``final``: as a final answer renders it."""
        return (self.final if final and self.final is not None else self.rule).apply(text)


@dataclass(frozen=True, kw_only=True)
class SystemBlock:
    """Where and how the system message is rendered.

    ``standalone``: before the first turn, after the preamble.  ``first_user``: inside the
    first user turn, between the user prefix and the user content (Llama-2, Mistral v1, Gemma).
    ``default`` is rendered when the conversation has no system message; ``None`` means the
    block is omitted then.  ``skip_empty`` (``{SYSTEM|nonempty}``): a system message whose
    content is ``""`` counts as no system message (the block is omitted, or shows the default);
    many templates test ``{% if system_message %}``.  ``trim``/``trim_side`` as in :class:`Turn`.
    With ``skip_empty``, ``empty_after_trim`` (``{SYSTEM|trim|nonblank}``) tests the content as the
    block renders it (after its trim: a blank one counts as none too), and ``empty_omitted``
    (``{SYSTEM|nonempty|empty_omitted}``) makes an empty system message render nothing, neither the
    block nor the default (or ``absent`` text), which stay for a conversation without one
    (MiniMax-M1 renders its default only when there is no system message).

    ``absent`` (standalone blocks; ``{NOSYSTEM}...{/NOSYSTEM}`` in a spec) is literal text rendered
    *instead of* the block when the conversation has no system message, for templates whose
    system turn without a message is not the block around a default message: a fixed system
    turn that a system message extends (``"<|System|>\nyou are a helpful assistant."`` vs.
    ``"...assistant.\n\n" + message``), or one that holds today's date (``{DATE=...}``).  It
    excludes ``default``.
    """

    placement: Placement = "standalone"
    prefix: Fragment = ()
    suffix: Fragment = ()
    trim: bool = False
    default: str | None = None
    trim_side: Side = "both"
    skip_empty: bool = False
    absent: Fragment | None = None
    empty_after_trim: bool = False
    empty_omitted: bool = False

    def __post_init__(self) -> None:
        if not self.trim and self.trim_side != "both":
            _set(self, trim_side="both")
        if (self.empty_after_trim or self.empty_omitted) and not self.skip_empty:
            raise ValueError("empty_after_trim and empty_omitted say how an empty system message counts as none: "
                             "they need skip_empty ({SYSTEM|nonempty})")
        if not self.trim:  # nothing trimmed: the content as rendered is the content (one value per meaning)
            _set(self, empty_after_trim=False)
        if self.absent is not None and not self.absent:  # nothing instead of the block: omitted
            _set(self, absent=None)

    @property
    def rule(self) -> ContentRule:
        """The block's content rule (a trim, or none)."""
        return ContentRule(trim=self.trim, trim_side=self.trim_side)

    def content(self, text: str) -> str:
        """``text`` as the block renders it (trimmed or not)."""
        return apply_trim(text, self.trim, self.trim_side)

    def counts_as_none(self, text: str) -> bool:
        """Whether a system message with content ``text`` counts as none (``skip_empty``)."""
        return self.skip_empty and (self.content(text) if self.empty_after_trim else text) == ""


#: the message keys that carry an answer's explicit reasoning (transformers/Qwen3/DeepSeek, Ollama/gpt-oss)
REASONING_KEYS = ("reasoning_content", "thinking")


def message_reasoning(message: dict) -> str | None:
    """An assistant message's explicit reasoning (``reasoning_content``, else ``thinking``), or None."""
    for key in REASONING_KEYS:
        r = message.get(key)
        if r is not None:
            return r
    return None


def has_reasoning(message: dict) -> bool:
    """Whether an answer has reasoning: its explicit reasoning is not ``""``, or (without one) its
    content's :func:`reasoning_of` is not empty (Qwen3's ``reasoning_content`` test)."""
    r = message_reasoning(message)
    return bool(r) if r is not None else bool(reasoning_of(message.get("content") or ""))


@dataclass(frozen=True, kw_only=True)
class JsonStyle:
    """How a format serialises JSON (tool definitions, tool-call arguments given as objects):
    Python's ``json.dumps`` with these arguments, which is what transformers' ``tojson`` filter
    runs.  ``separators`` is always explicit (``json.dumps``'s default depends on ``indent``)."""

    indent: int | None = None
    separators: tuple[str, ...] = ()
    sort_keys: bool = False
    ensure_ascii: bool = False

    def __post_init__(self) -> None:
        if not self.separators:
            _set(self, separators=(",", ": ") if self.indent is not None else (", ", ": "))
        if len(self.separators) != 2:
            raise ValueError(f"separators must be (item, key) strings, got {self.separators!r}")
        _set(self, separators=tuple(self.separators))

    @property
    def tojson_default(self) -> bool:
        """Whether this is a bare ``| tojson`` (transformers' defaults)."""
        return self == JsonStyle()

    def dumps(self, value: Any) -> str:
        return _json.dumps(value, indent=self.indent, separators=self.separators, sort_keys=self.sort_keys,
                           ensure_ascii=self.ensure_ascii)


STRING_ARGUMENTS = ("verbatim", "json")
#: where the tool list goes (``ToolFormat.placement``)
TOOL_PLACEMENTS = ("system", "first_user", "last_user", "after_system", "start")
#: how a tool result's content renders (``ToolFormat.result_content``)
RESULT_CONTENTS = ("verbatim", "json", "trim")
#: when ``content_sep`` renders between an answer's content and its first call
#: (``ToolFormat.content_sep_if``)
CONTENT_SEP_IFS = ("answer", "content", "unended")
#: how a per-argument call writes a value that is not a string (``ToolFormat.arg_values``)
ARG_VALUES = ("json", "python", "str", "python_call")
#: how an answer with tool calls renders its content (``ToolFormat.call_answers``)
CALL_ANSWERS = ("rule", "trim", "verbatim")
#: how an answer right after a tool result renders its content (``ToolFormat.answers_after_results``)
ANSWERS_AFTER_RESULTS = ("rule", "verbatim")
#: ``ToolFormat.arg_cdata``: a string argument holding one of these goes in a CDATA section
CDATA_TRIGGERS = ("<", "&", "\n")
#: what opens and closes a CDATA section (``]]>`` in the text is not split, as templates write it)
CDATA_OPEN, CDATA_CLOSE = "<![CDATA[", "]]>"
#: when ``system_sep`` renders between the system message and the tool list (``ToolFormat.system_sep_if``)
SYSTEM_SEP_IFS = ("message", "content")
#: what of each tool the tool list serialises (``ToolFormat.tool_object``)
TOOL_OBJECTS = ("tool", "function")
#: how the tool list writes each tool (``ToolFormat.tool_layout``): JSON, :func:`xml_tool` or
#: :func:`python_def_tool`, :func:`typescript_tool`, or Python's ``str`` of the tool (``python_str``)
TOOL_LAYOUTS = ("json", "xml", "python_def", "typescript", "python_str")


def xml_tool(fn: Any, style: JsonStyle) -> str:
    r"""A tool's ``function`` object in the ``xml`` layout (Qwen3-Coder's tool list)::

        \n<function>\n<name>NAME</name>[\n<description>DESCRIPTION</description>]\n<parameters>
        (\n<parameter>\n<name>KEY</name>[\n<type>T</type>][\n<description>D</description>]EXTRA\n</parameter>)*
        EXTRA\n</parameters>EXTRA\n</function>

    One ``<parameter>`` per key of ``parameters.properties`` (when both are objects), in order;
    descriptions are whitespace-stripped (``str.strip``).  ``EXTRA`` is ``\n<KEY>VALUE</KEY>`` for
    every other key of the property, of ``parameters`` (not ``type``/``properties``) and of the
    function (not ``type``/``name``/``description``/``parameters``), in order: an object or array
    VALUE as ``style`` JSON, anything else as Python's ``str`` (a template's ``value | string``:
    ``True``, ``None``, ``1.5``)."""

    def text(v: Any) -> str:
        return style.dumps(v) if isinstance(v, (dict, list)) else str(v)

    def extra(d: Any, handled: tuple[str, ...]) -> str:
        if not isinstance(d, dict):
            return ""
        return "".join(f"\n<{k}>{text(v)}</{k}>" for k, v in d.items() if k not in handled)

    out = "\n<function>\n<name>" + str(fn.get("name", "")) + "</name>"
    if "description" in fn:
        out += "\n<description>" + str(fn["description"]).strip() + "</description>"
    out += "\n<parameters>"
    params = fn.get("parameters")
    if isinstance(params, dict) and isinstance(params.get("properties"), dict):
        for name, spec in params["properties"].items():
            out += "\n<parameter>\n<name>" + str(name) + "</name>"
            if isinstance(spec, dict):
                if "type" in spec:
                    out += "\n<type>" + str(spec["type"]) + "</type>"
                if "description" in spec:
                    out += "\n<description>" + str(spec["description"]).strip() + "</description>"
            out += extra(spec, ("name", "type", "description")) + "\n</parameter>"
    return (out + extra(params, ("type", "properties")) + "\n</parameters>"
            + extra(fn, ("type", "name", "description", "parameters")) + "\n</function>")


#: JSON Schema type -> the Python type name :func:`python_def_tool` writes (anything else: ``Any``)
PY_TYPES = {"string": "str", "number": "int", "integer": "int", "boolean": "bool", "array": "list"}


def python_def_problem(tool: Any) -> str | None:
    """Why :func:`python_def_tool` cannot write ``tool`` (its template raises or skips it), or None."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return 'its "type" is not "function" (the layout lists function tools only)'
    fn = tool.get("function")
    if not isinstance(fn, dict) or not isinstance(fn.get("parameters"), dict) \
            or not isinstance(fn["parameters"].get("properties"), dict):
        return "it has no function.parameters.properties object (the layout writes one argument per property)"
    req = fn["parameters"].get("required", [])
    if not isinstance(req, list) or not all(isinstance(r, str) for r in req):
        return "its parameters.required is not a list of names"
    return None


def python_def_tool(fn: Any) -> str:
    """A tool's ``function`` object in the ``python_def`` layout (Seed-OSS's tool list): a Python
    signature and a docstring, each line of the docstring indented by four spaces: ``def NAME(K:
    T,K: T):``, the docstring's opening quotes, DESCRIPTION (whitespace-stripped), an empty line,
    ``Args:`` with one ``- K (T) [必填]: D`` line per property (``[选填]`` for a key not in
    ``parameters.required``) where there are properties, an empty line, ``Returns:`` with one ``- K
    (T): D`` line per key of ``returns.properties`` where that is a non-empty object, then the
    closing quotes.  ``T`` is the :data:`PY_TYPES` name of the property's ``type`` (``Any``
    otherwise), ``D`` its ``description`` as Python's ``str`` writes it (empty where it is missing
    or false).  Tools :func:`python_def_problem` names are a MessageError before this runs."""

    def ty(spec: Any) -> str:
        t = spec.get("type") if isinstance(spec, dict) else None
        return PY_TYPES.get(t, "Any") if isinstance(t, str) else "Any"

    def desc(spec: Any) -> str:
        d = spec.get("description") if isinstance(spec, dict) else None
        return str(d) if d else ""

    params = fn["parameters"]
    props, required = params["properties"], params.get("required", [])
    out = ("def " + str(fn.get("name", "")) + "(" + ",".join(f"{k}: {ty(v)}" for k, v in props.items())
           + '):\n    """\n    ' + (str(fn["description"]).strip() if "description" in fn else "") + "\n\n")
    if props:
        out += "    Args:" + "".join(f"\n    - {k} ({ty(v)}) {'[必填]' if k in required else '[选填]'}: {desc(v)}"
                                     for k, v in props.items())
    out += "\n"
    returns = fn.get("returns")
    if isinstance(returns, dict) and isinstance(returns.get("properties"), dict) and returns["properties"]:
        out += "    Returns:" + "".join(f"\n    - {k} ({ty(v)}): {desc(v)}" for k, v in returns["properties"].items())
    return out + '\n    """'


#: the JSON Schema keys of a property that :func:`typescript_tool` writes as ``// KEY: VALUE`` comments
TS_COMMENT_KEYS = ("format", "maxItems", "maximum", "minItems", "minimum", "pattern")


def _ts_value(v: Any) -> str:
    """A schema value in a ``typescript`` comment: a string in double quotes, anything else as
    Python's ``str`` (``True``, ``None``, ``[1, 'a']``)."""
    return '"' + v + '"' if isinstance(v, str) else str(v)


def typescript_type(schema: Any, indent: str) -> str:
    """A JSON Schema as the ``typescript`` layout writes it (see :func:`typescript_tool`)."""
    ty = schema.get("type")
    if ty == "object":
        out = "{\n"
        required = schema.get("required", [])
        extra = None
        if "additionalProperties" in schema:
            ap = schema["additionalProperties"]
            extra = {"type": "any"} if ap == True else ap if isinstance(ap, dict) else None  # noqa: E712 (1 == True too)
        for key, val in schema.get("properties", {}).items():
            if "description" in val:
                out += "".join(indent + "// " + line + "\n" for line in val["description"].split("\n") if line.strip())
            out += "".join(indent + "// " + k + ": " + _ts_value(v) + "\n" for k, v in val.items() if k in TS_COMMENT_KEYS)
            out += indent + key + ("" if key in required else "?") + ": " + typescript_type(val, indent + "  ") + ","
            if "default" in val or "defalut_value" in val:
                out += " // default: " + _ts_value(val.get("default", val.get("defalut_value")))
            out += "\n"
        if extra is not None:
            out += indent + "[key: string]: " + typescript_type(extra, indent + "  ") + "\n"
        return out + indent[:len(indent) - 2] + "}"
    if ty == "string":
        if schema.get("enum"):
            return " | ".join('"' + str(v) + '"' for v in schema["enum"])
        return "Date" if schema.get("format", "none") in ("date-time", "date") else "string"
    if ty in ("number", "integer"):
        return " | ".join(str(v) for v in schema["enum"]) if schema.get("enum") else "number"
    if ty == "boolean":
        return "boolean"
    if ty == "array":
        return typescript_type(schema["items"], indent) + "[]" if "items" in schema else "Array<any>"
    return "any"


def typescript_tool(fn: Any) -> str:
    """A tool's ``function`` object in the ``typescript`` layout (GigaChat's ``namespace functions``
    list): its description's non-blank lines as ``// LINE`` comments, then ``type NAME = (_: T) =>
    R;`` and a newline, where ``T`` is the parameters' type where they have a non-empty
    ``properties`` object (``type NAME = () => R;`` otherwise) and ``R`` that of
    ``return_parameters`` (``any`` without).  A schema's type (:func:`typescript_type`): an object as
    ``{``, per property its description's non-blank lines and its :data:`TS_COMMENT_KEYS` as ``//``
    comments, ``KEY: T,`` (``KEY?:`` when not in ``required``) and `` // default: V`` where it has a
    ``default``, each line indented two spaces deeper per level, an ``[key: string]: T`` line for
    ``additionalProperties`` (``true``: ``any``), then ``}``; a string as its ``enum`` values in
    double quotes joined by `` | `` (``Date`` for a ``date``/``date-time`` format, else ``string``);
    a number or integer as its ``enum`` values joined by `` | `` (else ``number``); ``boolean``; an
    array as its ``items`` type + ``[]`` (``Array<any>`` without); anything else ``any``.  Values in
    comments: a string in double quotes, anything else as Python's ``str``.  A schema the layout
    cannot read (a property that is not an object, a description that is not a string) raises
    TypeError or AttributeError, as its template does."""
    head = [f"// {line}" for line in fn["description"].split("\n") if line.strip()] if fn.get("description") else []
    name = str(fn["name"]) if "name" in fn else ""
    params, ret = fn.get("parameters"), fn.get("return_parameters")
    body = (f"type {name} = (_: {typescript_type(params, '  ')}) => " if params and params.get("properties")
            else f"type {name} = () => ")
    body += typescript_type(ret, "  ") if ret and ret.get("properties") else "any"
    return "\n".join(head + [body + ";\n"])


def split_calls(opening: str, between: str, closing: str) -> tuple[str, str, str, str, str]:
    """``(calls_open, call_prefix, call_sep, call_suffix, calls_close)`` from the text before an
    answer's first call's name (``opening = calls_open + call_prefix``), between a call's arguments
    and the next call's name, and after the last call's arguments (``closing = call_suffix +
    calls_close``): nothing around the calls where the text between reads so, else the calls as
    items of a list (:func:`split_between_items`).  None where no split reads it back."""
    if between.startswith(closing) and between.endswith(opening) and len(between) >= len(opening) + len(closing):
        return "", opening, between[len(closing):len(between) - len(opening)], closing, ""
    suffix, sep, prefix = split_between_items(opening, between, closing)
    return opening[:len(opening) - len(prefix)], prefix, sep, suffix, closing[len(suffix):]


def split_per_argument(lead: str, between: str, tail: str, empty: str | None,
                       next_call: str | None = None) -> tuple[str, str, str, str, str, str] | None:
    """The canonical ``(call_middle, arg_prefix, arg_suffix, call_suffix, no_arguments, arg_sep)``
    of a call whose arguments render key by key, from the text after its name (and id) up to the
    first key (``lead = call_middle + arg_prefix``), between one argument's value and the next key
    (``between = arg_suffix + arg_prefix``), after the last value (``tail = arg_suffix +
    call_suffix``) and, where known, after the name of a call without arguments (``empty =
    call_middle + [no_arguments] + call_suffix``).  Every split renders calls with arguments alike;
    ``empty`` decides among them (one without ``no_arguments`` first), and the canonical one has
    the shortest ``arg_prefix``; where known, the text from the last value to the next call
    (``next_call``) starts with ``arg_suffix``.  Where no such split reads them back, ``between =
    arg_suffix + arg_sep + arg_prefix`` with the longest ``arg_prefix`` the lead ends with and the
    longest ``arg_suffix`` the tail starts with (LFM2.5's ``, ``).  None when no split reads the
    texts back.  The one rule for the converter and the by-example spec form."""
    for exact in (True, False):
        for a in range(min(len(lead), len(between)) + 1):
            ap = between[len(between) - a:]
            asuf = between[:len(between) - a]
            if lead.endswith(ap) and tail.startswith(asuf) and (next_call is None or next_call.startswith(asuf)):
                cm, cs = lead[:len(lead) - a], tail[len(asuf):]
                if empty is None or cm + cs == empty:
                    return cm, ap, asuf, cs, "", ""
                if not exact and empty.startswith(cm) and empty.endswith(cs) and len(empty) > len(cm) + len(cs):
                    return cm, ap, asuf, cs, empty[len(cm):len(empty) - len(cs)], ""
    a = next(a for a in range(min(len(lead), len(between)), -1, -1) if lead.endswith(between[len(between) - a:]))
    rest = between[:len(between) - a]
    b = next(b for b in range(min(len(tail), len(rest)), -1, -1) if tail.startswith(rest[:b])
             and (next_call is None or next_call.startswith(rest[:b])))
    ap, asuf, sep = between[len(between) - a:], rest[:b], rest[b:]
    cm, cs = lead[:len(lead) - a], tail[b:]
    if empty is None or cm + cs == empty:
        return cm, ap, asuf, cs, "", sep
    if empty.startswith(cm) and empty.endswith(cs) and len(empty) > len(cm) + len(cs):
        return cm, ap, asuf, cs, empty[len(cm):len(empty) - len(cs)], sep
    return None


def split_between_items(opening: str, between: str, closing: str) -> tuple[str, str, str]:
    """The canonical reading of the text ``between`` two repeated items (tools in a list), given
    the text before the first (``opening``) and after the last (``closing``): ``(item_suffix,
    item_sep, item_prefix)`` with ``between == item_suffix + item_sep + item_prefix``,
    ``opening`` ending with ``item_prefix`` and ``closing`` starting with ``item_suffix``.

    Without a separator where a split reads it so (the longest ``item_prefix``); otherwise the
    longest ``item_prefix`` the opening also ends with, then the longest ``item_suffix`` the
    closing also starts with, and the rest separates (a JSON array's ``", "``).  The one rule for
    the converter (:mod:`tmplc.convert.tools`) and the by-example spec form
    (:mod:`tmplc.spec.tools_example`)."""
    for n in range(min(len(opening), len(between)), -1, -1):
        prefix, suffix = between[len(between) - n:], between[:len(between) - n]
        if opening.endswith(prefix) and closing.startswith(suffix):
            return suffix, "", prefix
    n = next(n for n in range(min(len(opening), len(between)), -1, -1) if opening.endswith(between[len(between) - n:]))
    rest = between[:len(between) - n]
    m = next(m for m in range(min(len(closing), len(rest)), -1, -1) if closing.startswith(rest[:m]))
    return rest[:m], rest[m:], between[len(between) - n:]


@dataclass(frozen=True, kw_only=True)
class ToolFormat:
    """How a format renders tools: the tool list, assistant tool calls and tool results.

    The tool list (``tools=[...]`` beside the messages) is ``list_prefix + (item_prefix +
    json(tool) + item_suffix) per tool, separated by item_sep + list_suffix``; each tool is
    serialised by ``json``: whole (``{"type": "function", "function": {...}}``) with
    ``tool_object="tool"``, or only its ``function`` object with ``"function"`` (MiniMax, DeepSeek
    V3.2, Solar: ``tool.function | tojson``; every tool then needs a ``function`` object).
    Mistral's ``tools|tojson`` is ``[`` + items separated by ``", "`` + ``]``.  ``tool_layout="xml"``
    writes each tool's ``function`` object as XML instead (:func:`xml_tool`, Qwen3-Coder);
    ``"python_def"`` as a Python signature with a docstring (:func:`python_def_tool`, Seed-OSS);
    ``"typescript"`` as a TypeScript function type (:func:`typescript_tool`, GigaChat);
    ``"python_str"`` as Python's ``str`` writes the tool (or its ``function`` object): ``{'type':
    'function', ...}``, a template's ``tool | string`` (Apriel).  Where it goes
    (``placement``):

    * ``"system"``: into the standalone system block; when tools are given, the block is rendered
      even without a system message, as ``system.prefix + [system content + system_sep] + list +
      system.suffix``.
    * ``"first_user"``: into the first user turn, between the user prefix and the user content
      (Llama 3.1's ``tools_in_user_message``).  With tools, the first message after the system
      message must be a user message (MessageError otherwise, or when there is none).
    * ``"last_user"``: right before the last user message's turn (before its prefix; Mistral's
      ``[AVAILABLE_TOOLS]``).  With tools, the conversation needs a user message.
    * ``"after_system"``: right after the standalone system block (after the preamble where no
      block renders), before the first message's turn (Devstral's ``[AVAILABLE_TOOLS]``).
    * ``"start"``: a block of its own at the very start of the text, before the preamble and the
      system block (Kimi K2's ``tool_declare`` turn).

    ``list_first`` (``"system"`` placement): the block is ``prefix + list + [system_sep + system
    content] + suffix`` instead (Qwen3.5, Spark: the tools, then the system message).
    ``system_sep_if``: ``"message"`` (default), ``system_sep`` renders whenever the block holds a
    system message; ``"content"``, only when that message's content, as the block renders it,
    is not empty (LFM2's ``"\n" if system_prompt``, Laguna).

    ``system_prefix`` (None: unchanged): with tools, the system block's prefix is this fragment
    instead of ``system.prefix`` (Llama 3.1 adds ``Environment: ipython`` to its system header;
    Llama 3.2's also holds today's date, a ``{DATE=...}`` piece; a string is taken as literal text).
    ``empty_list``: an empty ``tools`` list still counts as tools (the template tests ``tools is
    not none``: the list's text renders without items); otherwise ``[]`` means no tools.
    ``keep_default_system`` (``"system"`` placement): with tools and no system message, the
    format's default system message still renders before the list (Qwen2.5); false: the list
    alone (Granite 4.0).  ``empty_system_counts``: with tools, a system message whose content is
    empty still counts (its empty content, ``system_sep`` and the list render), where without tools
    ``{SYSTEM|nonempty}`` skips it (Granite 4.x tests the message's presence when tools are given).

    An assistant message's tool calls render after its content, before its suffix:
    ``content_sep``, then ``calls_open``, per call ``call_prefix + name + call_middle + arguments +
    call_suffix``, calls separated by ``call_sep``, then ``calls_close`` (Hunyuan's
    ``<tool_calls>...</tool_calls>`` around the calls).  ``content_sep_if`` says when the separator renders:
    ``"answer"``, when the answer, as the earlier-answer rule renders it (after its reasoning
    block, if any), is not empty;
    ``"content"``, when the message's content is not empty, even where the rule renders nothing of
    it (QwQ tests ``message.content`` and renders the text after ``</think>``); ``"unended"``,
    when the rendered answer is not empty and does not already end with the separator (Reka
    adds a newline unless the answer ends with one).  With ``call_id_prefix`` (None: no id),
    ``call_id_prefix + id`` follows the name, and every call needs its ``id`` (a string;
    Mistral's ``[CALL_ID]``); with ``call_id_after``, ``call_id_prefix + id + call_id_suffix``
    follows the arguments instead (Apriel's ``{"name": ..., "arguments": ..., "id": ...}``).  With
    ``last_call_ids`` False, the calls of the conversation's last message render without their
    ids, which they then need not have (Apriel's ``loop.last``).  With ``call_index_prefix`` (None: none), ``call_index_prefix`` + the
    call's 0-based position in its answer follows them (Kimi K2's ``functions.NAME:0``).  Arguments given as a JSON string render as given
    (``string_arguments``); as an object, by ``call_json`` (None: ``json``).

    Arguments key by key (``arg_prefix`` not None; Qwen3-Coder's ``<parameter=k>``, GLM's
    ``<arg_key>``): per key of the arguments object, in its order, ``arg_prefix + key +
    arg_middle + value + arg_suffix``, a string value as given and any other value as
    ``call_json`` JSON, except that ``arg_values: "python"`` writes ``None``, ``True`` and
    ``False`` as Python does, and ``"str"`` every value that is not a string as Python's ``str``
    does (``{'k': None}``, ``[1, 2]``: a template's ``value | string``).  Such a format needs the
    arguments as an object: given as a JSON string, they are a MessageError (its templates raise
    on them, or parse them).  ``renders_list`` False: the template renders no tool list (DeepSeek
    V3, R1), and non-empty ``tools`` are a MessageError.  ``renders_calls`` False: the template renders no calls (LFM2),
    and an answer carrying ``tool_calls`` is a MessageError.  ``max_calls`` (0: no limit): an answer with more
    calls is a MessageError (Llama 3.1: "only supports single tool-calls at once").
    ``calls_alone``: the template renders an answer with tool calls without its content, so an
    answer with calls whose content renders non-empty is a MessageError (never dropped silently).

    A ``role: "tool"`` message renders ``result_prefix + content + result_suffix`` (with
    ``result_id_suffix``, None: no id, ``result_prefix + tool_call_id + result_id_suffix + content +
    result_suffix``: every result needs its ``tool_call_id``, a string), the content as
    given (``result_content="verbatim"``), whitespace-stripped (``"trim"``: Qwen3.5's ``|trim``) or as a
    JSON string literal (``"json"``: the template pipes
    it through ``tojson``, with ``call_json``'s style); a run of consecutive tool messages is opened by
    ``results_open`` and closed by ``results_close``, its results separated by ``result_sep``
    (``grouped``; otherwise each result is opened and closed on its own)."""

    json: JsonStyle = field(default_factory=JsonStyle)
    tool_object: str = "tool"
    #: ``"xml"``: each tool's function object as :func:`xml_tool` writes it (``json``: nested values)
    tool_layout: str = "json"
    placement: str = "system"
    system_sep: str = ""
    system_sep_if: str = "message"
    #: ``"system"`` placement: the list goes before the system message's content, not after it
    list_first: bool = False
    system_prefix: Fragment | None = None
    empty_list: bool = False
    keep_default_system: bool = True
    #: ``"system"`` placement: with tools and no system message, the block holds this text as its
    #: message (Qwen3-Coder's "You are Qwen, ..."), where without tools it renders as the format says
    default_system: str | None = None
    empty_system_counts: bool = False
    list_prefix: str = ""
    item_prefix: str = ""
    item_suffix: str = ""
    item_sep: str = ""
    list_suffix: str = ""
    #: the list is one JSON array in ``json``'s style (Granite 3.3's ``tools | tojson(indent=4)``,
    #: which nests each tool a level deeper than ``json.dumps(tool)``); the item fields stay empty
    list_json: bool = False
    #: with tools and no system message, this renders in place of the system block's ``absent``
    #: text (Granite 3.3's default system message names the tools); None: ``absent`` as without tools
    absent: Fragment | None = None
    #: (``"system"`` placement) with tools and no system message, the list in a block of its own,
    #: ``system.prefix + list + list_block_suffix``, then what the format renders without a system
    #: message (its default system block or ``absent`` text) as without tools (Apriel 1.5)
    list_block_suffix: Fragment | None = None
    content_sep: str = ""
    call_prefix: str = ""
    call_id_prefix: str | None = None
    #: the id after the arguments (``call_id_prefix + id + call_id_suffix``, then ``call_suffix``)
    call_id_after: bool = False
    call_id_suffix: str = ""
    #: False: the calls of the conversation's last message render without their ids (Apriel)
    last_call_ids: bool = True
    call_index_prefix: str | None = None
    call_middle: str = ""
    call_suffix: str = ""
    call_sep: str = ""
    calls_open: str = ""
    calls_close: str = ""
    #: arguments key by key (None: one JSON object); see the class docstring
    arg_prefix: str | None = None
    arg_middle: str = ""
    arg_suffix: str = ""
    #: a per-argument call: the text between two arguments (LFM2.5's ``, `` in ``f(a='x', b=1)``)
    arg_sep: str = ""
    arg_values: str = "json"
    #: a per-argument call: a string value holding any of :data:`CDATA_TRIGGERS` renders inside
    #: ``<![CDATA[`` ... ``]]>`` (MiniCPM5), any other string as given
    arg_cdata: bool = False
    #: a per-argument call: the text between the key and a value that is not a string (None:
    #: ``arg_middle``, as before a string); DeepSeek V3.2's ``string="false">`` against ``string="true">``
    arg_middle_other: str | None = None
    #: a per-argument call whose arguments object is empty: this in their place (DeepSeek V4's ``\n``)
    no_arguments: str = ""
    content_sep_if: str = "answer"
    results_open: str = ""
    result_prefix: str = ""
    result_id_suffix: str | None = None
    result_suffix: str = ""
    #: between two consecutive results of a run (``grouped``): DeepSeek V4's ``\n\n``
    result_sep: str = ""
    results_close: str = ""
    grouped: bool = True
    #: a user message right after a tool result opens with this instead of the user prefix (None:
    #: the prefix): DeepSeek V4 renders results inside a user turn that the next user message continues
    user_prefix_after_results: str | None = None
    #: ``user_prefix_after_results`` also opens a user message right after another user message
    #: (DeepSeek V4: one user turn holds consecutive user messages and results)
    user_after_user: bool = False
    #: a run of results answers every call of the answer right before it, one result per call:
    #: another run is a MessageError (DeepSeek V3.2 closes the run after the last call's result,
    #: and renders anything else into a run it never closes)
    results_answer_calls: bool = False
    #: an answer, or the generation prompt, right after a tool result opens with this instead of the
    #: assistant prefix (None: the prefix): DeepSeek V3.2's answer goes on after its results
    assistant_prefix_after_results: str | None = None
    #: arguments given as a JSON string: ``"verbatim"`` renders the string as given (Qwen3's
    #: ``arguments is string`` test); ``"json"`` serialises it like an object, as a JSON string
    #: literal (Qwen2.5 and Hermes pipe every argument through ``tojson``)
    string_arguments: str = "verbatim"
    call_json: JsonStyle | None = None
    max_calls: int = 0
    calls_alone: bool = False
    result_content: str = "verbatim"
    #: False: the template never renders an answer's ``tool_calls`` (LFM2: the model writes its
    #: calls into the content, as it emits them), so an answer carrying them is a MessageError,
    #: never rendered without them; the call fields then keep their defaults
    renders_calls: bool = True
    #: False: the template never renders the ``tools`` list (DeepSeek: the tools go into the system
    #: message by hand), so non-empty ``tools`` are a MessageError, never dropped silently; the
    #: list fields then keep their defaults
    renders_list: bool = True
    #: an answer with tool calls ends with the assistant's regular suffix even where it is the
    #: final answer (Hy3: the turn goes on after its results); no effect without a ``final_suffix``
    calls_end_turn: bool = False
    #: how an answer with tool calls renders its content: ``"rule"`` as any answer (the format's
    #: rule), ``"trim"`` as the rule renders it, whitespace-stripped (``str.strip``; Qwen3-Coder's
    #: ``message.content | trim`` beside calls only), ``"verbatim"`` as given (DeepSeek V3.1's call
    #: branch never splits off ``</think>``)
    call_answers: str = "rule"
    #: ``"verbatim"``: an answer right after a tool result renders its content as given, where the
    #: others render by the format's rule (DeepSeek V3.1's ``is_tool`` branch); ``"rule"``: as any answer
    answers_after_results: str = "rule"

    def __post_init__(self) -> None:
        if isinstance(self.system_prefix, str):
            _set(self, system_prefix=fragment([self.system_prefix]))
        if isinstance(self.absent, str):
            _set(self, absent=fragment([self.absent]))
        if isinstance(self.list_block_suffix, str):
            _set(self, list_block_suffix=fragment([self.list_block_suffix]))
        if self.list_block_suffix is not None:
            if self.placement != "system" or self.list_first or self.system_prefix is not None \
                    or self.default_system is not None:
                raise ValueError("list_block_suffix (the list in a block of its own without a system message) is for "
                                 "a list after the system message in its block (placement system, not list_first), "
                                 "without a system_prefix or default_system of its own")
            _set(self, keep_default_system=True)  # the block holds no default: one value per meaning
        if self.placement not in TOOL_PLACEMENTS:
            raise ValueError(f"tools placement must be one of {', '.join(TOOL_PLACEMENTS)}, got {self.placement!r}")
        if self.string_arguments not in STRING_ARGUMENTS:
            raise ValueError(f"string_arguments must be one of {', '.join(STRING_ARGUMENTS)}, "
                             f"got {self.string_arguments!r}")
        if self.result_content not in RESULT_CONTENTS:
            raise ValueError(f"result_content must be one of {', '.join(RESULT_CONTENTS)}, "
                             f"got {self.result_content!r}")
        if self.content_sep_if not in CONTENT_SEP_IFS:
            raise ValueError(f"content_sep_if must be one of {', '.join(CONTENT_SEP_IFS)}, got {self.content_sep_if!r}")
        if not self.renders_calls:  # no call renders: the call fields mean nothing (one value per meaning)
            _set(self, **{f: v for f, v in _CALL_DEFAULTS.items() if getattr(self, f) != v})
        if not self.renders_list:  # likewise the list's; its JSON style stays as the calls' (call_style)
            _set(self, json=self.call_style, call_json=None,
                 **{f: v for f, v in _LIST_DEFAULTS.items() if getattr(self, f) != v})
        if self.system_sep_if not in SYSTEM_SEP_IFS:
            raise ValueError(f"system_sep_if must be one of {', '.join(SYSTEM_SEP_IFS)}, got {self.system_sep_if!r}")
        if not self.system_sep or self.placement != "system":
            _set(self, system_sep_if="message")  # nothing to render or no system block: one value per meaning
        if self.placement != "system":
            _set(self, list_first=False)
        elif self.renders_list:  # the block renders with the list whenever tools are given
            _set(self, absent=None)
        if self.tool_object not in TOOL_OBJECTS:
            raise ValueError(f"tool_object must be one of {', '.join(TOOL_OBJECTS)}, got {self.tool_object!r}")
        if self.tool_layout not in TOOL_LAYOUTS:
            raise ValueError(f"tool_layout must be one of {', '.join(TOOL_LAYOUTS)}, got {self.tool_layout!r}")
        if self.tool_layout == "xml":
            if self.list_json:
                raise ValueError("list_json writes the list as one JSON array; tool_layout xml writes each tool as XML")
            _set(self, tool_object="function")  # the layout writes the function object's fields
        elif self.tool_layout == "python_str":
            if self.list_json:
                raise ValueError("list_json writes the list as one JSON array; tool_layout python_str writes each "
                                 "tool as Python's str writes it")
        elif self.tool_layout == "typescript":
            if self.list_json:
                raise ValueError("list_json writes the list as one JSON array; tool_layout typescript writes each "
                                 "tool as a TypeScript type")
            _set(self, tool_object="function")  # the layout writes the function object
        elif self.tool_layout == "python_def":
            if self.list_json:
                raise ValueError("list_json writes the list as one JSON array; tool_layout python_def writes each "
                                 "tool as a Python signature")
            _set(self, tool_object="tool")  # the layout reads the whole tool (its type, its function)
        if self.list_json:
            if self.item_prefix or self.item_suffix or self.item_sep:
                raise ValueError("list_json writes the list as one JSON array: item_prefix, item_suffix and "
                                 "item_sep describe a list written item by item")
            if self.json.indent is None:  # one value per meaning: a flat array is the item-by-item form
                _set(self, list_json=False, list_prefix=self.list_prefix + "[", item_sep=self.json.separators[0],
                     list_suffix="]" + self.list_suffix)
        if self.call_answers not in CALL_ANSWERS:
            raise ValueError(f"call_answers must be one of {', '.join(CALL_ANSWERS)}, got {self.call_answers!r}")
        if self.answers_after_results not in ANSWERS_AFTER_RESULTS:
            raise ValueError(f"answers_after_results must be one of {', '.join(ANSWERS_AFTER_RESULTS)}, "
                             f"got {self.answers_after_results!r}")
        if self.arg_values not in ARG_VALUES:
            raise ValueError(f"arg_values must be one of {', '.join(ARG_VALUES)}, got {self.arg_values!r}")
        if not self.content_sep:
            _set(self, content_sep_if="answer")  # no separator: one value per meaning
        if self.call_id_prefix is None:  # no id: one value per meaning
            _set(self, call_id_after=False, call_id_suffix="", last_call_ids=True)
        elif self.call_id_suffix and not self.call_id_after:
            raise ValueError("call_id_suffix is the text after a call's id where the id follows the arguments "
                             "(call_id_after); where it follows the name, that text is call_middle")
        elif self.call_id_suffix and self.last_call_ids:  # every call renders it: part of the call's ending
            _set(self, call_suffix=self.call_id_suffix + self.call_suffix, call_id_suffix="")
        if self.arg_prefix is None:
            if (self.arg_middle or self.arg_suffix or self.arg_values != "json" or self.arg_middle_other is not None
                    or self.no_arguments or self.arg_cdata or self.arg_sep):
                raise ValueError("arg_middle, arg_middle_other, arg_suffix, arg_sep, arg_values, arg_cdata and "
                                 "no_arguments describe arguments rendered key by key: set arg_prefix (a string, "
                                 "possibly empty) with them")
        else:
            if self.arg_middle_other == self.arg_middle:
                _set(self, arg_middle_other=None)  # one value per meaning
            # cm + (AP k AM v AS)* + cs renders alike with AP's first character moved to the end of
            # cm and of AS when cs starts with it too: one value per meaning, the shortest arg_prefix
            # (a call without arguments, cm + no_arguments + cs, reads alike where no_arguments turns too)
            cm, ap, asuf, cs, na = self.call_middle, self.arg_prefix, self.arg_suffix, self.call_suffix, self.no_arguments
            while ap and cs and ap[0] == cs[0] and (na + ap[0]).startswith(ap[0]) and not self.arg_sep \
                    and not self.call_id_after:
                cm, asuf, na, ap, cs = cm + ap[0], asuf + ap[0], (na + ap[0])[1:], ap[1:], cs[1:]
            _set(self, call_middle=cm, arg_prefix=ap, arg_suffix=asuf, call_suffix=cs, no_arguments=na)
        if isinstance(self.max_calls, bool) or not isinstance(self.max_calls, int) or self.max_calls < 0:
            raise ValueError(f"max_calls must be a non-negative integer (0: no limit), got {self.max_calls!r}")
        if self.placement == "first_user" and self.system_sep:
            raise ValueError("system_sep separates the system message from a tool list in the system block; "
                             "a first_user tool list has none")
        if self.call_json == self.json:
            _set(self, call_json=None)  # one value per meaning
        if not self.grouped and not self.results_open and not self.results_close:
            _set(self, grouped=True)  # nothing opens or closes a run: one value per meaning
        if self.user_after_user and self.user_prefix_after_results is None:
            raise ValueError("user_after_user opens a user message after another with user_prefix_after_results: "
                             "set it")
        if self.result_sep and not self.grouped:
            raise ValueError("result_sep separates the results of a run: it needs grouped results")
        if self.default_system is not None:
            if self.placement != "system":
                raise ValueError("default_system is the system message of a tool list's system block: it needs "
                                 "placement system")
            _set(self, keep_default_system=True)  # the format's own default gives way to it: one value per meaning
        if self.placement != "system":  # about a list in the system block: one value per meaning
            _set(self, keep_default_system=True, empty_system_counts=False)
        if self.item_suffix and not self.item_sep and self.list_prefix.endswith(self.item_suffix):
            # LP (P j S)* LS == LP[:-len(S)] (S+P j)* S+LS: one value per meaning, the text between
            # items goes before each item (as the converter reads it)
            k = len(self.item_suffix)
            _set(self, list_prefix=self.list_prefix[:-k], item_prefix=self.item_suffix + self.item_prefix,
                 list_suffix=self.item_suffix + self.list_suffix, item_suffix="")

    def given(self, tools: Any) -> bool:
        """Whether ``tools`` (the list beside the messages) counts as tools and renders (see
        ``empty_list``; never where ``renders_list`` is False)."""
        return self.renders_list and (tools is not None if self.empty_list else bool(tools))

    def listed(self, tool: dict) -> Any:
        """What of a tool (a definition ``check_tools`` accepted) the tool list serialises."""
        return tool["function"] if self.tool_object == "function" else tool

    def item_text(self, tool: dict) -> str:
        """A tool (a definition ``check_tools`` accepted) as one item of the list renders it;
        ValueError where the ``typescript`` layout cannot read its schema (its template raises)."""
        if self.tool_layout == "xml":
            return xml_tool(self.listed(tool), self.json)
        if self.tool_layout == "python_def":
            return python_def_tool(tool["function"])
        if self.tool_layout == "typescript":
            try:
                return typescript_tool(self.listed(tool))
            except (TypeError, AttributeError, KeyError) as e:
                raise ValueError(f"its schema is not one the layout can read (a property or items that is not an "
                                 f"object, a description that is not a string): {type(e).__name__}: {e}") from None
        if self.tool_layout == "python_str":
            return str(self.listed(tool))
        return self.json.dumps(self.listed(tool))

    def answer_rule(self, rule: ContentRule, *, calls: bool, after_results: bool) -> ContentRule:
        """The content rule of an answer (with tool calls or not, right after a tool result or not)
        in a format whose answers otherwise render by ``rule`` (``call_answers``,
        ``answers_after_results``)."""
        if after_results and self.answers_after_results == "verbatim" or calls and self.call_answers == "verbatim":
            return IDENTITY
        return replace(rule, trim=True, trim_side="both") if calls and self.call_answers == "trim" else rule

    @property
    def call_style(self) -> JsonStyle:
        """The JSON style of call arguments (and of ``"json"`` results)."""
        return self.call_json if self.call_json is not None else self.json

    @property
    def per_argument(self) -> bool:
        """Whether calls render their arguments key by key (``arg_prefix`` set)."""
        return self.arg_prefix is not None

    def arguments(self, args: Any) -> str:
        """A call's arguments as the format renders them (a string as given unless
        ``string_arguments`` is ``"json"``, else ``call_style``); key by key for a per-argument
        format (whose arguments must be an object: :meth:`argument_items`)."""
        if self.per_argument:
            return self.arg_sep.join(self.arg_prefix + k + middle + v + self.arg_suffix
                                     for k, middle, v in self.argument_items(args)) or self.no_arguments
        return args if isinstance(args, str) and self.string_arguments == "verbatim" else self.call_style.dumps(args)

    def argument_items(self, args: dict) -> list[tuple[str, str, str]]:
        """A per-argument call's ``(key, middle, value text)`` triples, in the object's order: a
        string value as given after ``arg_middle``; any other value after ``arg_middle_other``
        (where set), ``None``/``True``/``False`` as Python writes them when ``arg_values`` is
        ``"python"`` (a template's ``value | string``), every value as Python's ``str`` writes it
        when it is ``"str"``, anything else as ``call_style`` JSON; ``"python_call"`` (LFM2.5's
        ``f(a='x', b=1)``) writes a string in single quotes (as given: not escaped), an object as
        ``call_style`` JSON and any other value as Python's ``str``; with ``arg_cdata``, a string
        holding any of :data:`CDATA_TRIGGERS` inside a CDATA section."""
        other = self.arg_middle if self.arg_middle_other is None else self.arg_middle_other
        out = []
        for k, v in args.items():
            if isinstance(v, str):
                wrap = self.arg_cdata and any(c in v for c in CDATA_TRIGGERS)
                text = CDATA_OPEN + v + CDATA_CLOSE if wrap else v
                out.append((k, self.arg_middle, "'" + text + "'" if self.arg_values == "python_call" else text))
            elif self.arg_values == "python_call" and isinstance(v, dict):
                out.append((k, other, self.call_style.dumps(v)))
            elif self.arg_values in ("str", "python_call") or self.arg_values == "python" and (
                    v is None or isinstance(v, bool)):
                out.append((k, other, str(v)))
            else:
                out.append((k, other, self.call_style.dumps(v)))
        return out

    def result(self, content: str) -> str:
        """A tool result's content as the format renders it."""
        if self.result_content == "trim":
            return content.strip()
        return self.call_style.dumps(content) if self.result_content == "json" else content


#: the ToolFormat fields about calls and their defaults (kept at these where ``renders_calls`` is False)
_CALL_DEFAULTS = {"content_sep": "", "call_prefix": "", "call_id_prefix": None, "call_id_after": False,
                  "call_id_suffix": "", "last_call_ids": True, "call_index_prefix": None, "call_middle": "", "call_suffix": "",
                  "call_sep": "", "calls_open": "", "calls_close": "", "arg_prefix": None, "arg_middle": "",
                  "arg_suffix": "", "arg_sep": "", "arg_values": "json", "content_sep_if": "answer", "string_arguments": "verbatim",
                  "max_calls": 0, "calls_alone": False, "calls_end_turn": False, "arg_middle_other": None,
                  "call_answers": "rule", "arg_cdata": False,
                  "no_arguments": "", "results_answer_calls": False}
#: the ToolFormat fields about the tool list and their defaults (kept at these where ``renders_list`` is False)
_LIST_DEFAULTS = {"tool_object": "tool", "placement": "system", "system_sep": "", "system_sep_if": "message",
                  "list_first": False,
                  "system_prefix": None, "empty_list": False, "keep_default_system": True,
                  "empty_system_counts": False, "list_prefix": "", "item_prefix": "", "item_suffix": "",
                  "item_sep": "", "list_suffix": "", "list_json": False, "absent": None, "list_block_suffix": None,
                  "tool_layout": "json", "default_system": None}


@dataclass(frozen=True, kw_only=True)
class Structure:
    """The layout of a format: what the two-repetition spec describes."""

    preamble: Fragment = ()
    system: SystemBlock | None = None
    user: Turn = field(default_factory=Turn)
    assistant: Turn = field(default_factory=Turn)
    #: text that ends every conversation rendered without the generation prompt (``{END}`` in a
    #: spec; Phi-3.5 appends the EOS token); not rendered with ``continue_final_message``
    closing: Fragment = ()
    #: ``add_generation_prompt`` on a conversation ending with an answer: ``"final"`` appends the
    #: prompt after it (rendered as the final answer); ``"skip"`` does nothing: it renders as
    #: without (``{PROMPT|skip_after_answer}``; GigaChat, DeepSeek-V3.1 test
    #: ``messages[-1].role != 'assistant'``); ``"history"`` renders the answer as an earlier one,
    #: then the prompt (``{PROMPT|history_after_answer}``; gpt-oss: ``loop.last and not
    #: add_generation_prompt``).  ``"history"`` is ``"final"`` when the final answer has no rule
    #: or ending of its own (one value per meaning).
    prompt_after_answer: str = "final"
    #: which answers are final: ``"last"`` the conversation's last message (when an assistant
    #: one); ``"last_answer"`` the last assistant message, wherever it is (``{OUTPUT|final_last_answer}``
    #: on the second answer; LFM2.5); ``"after_user"`` every answer after the last user message
    #: (``{OUTPUT|final_after_user}``; Qwen3's ``last_query_index``).  ``"last"`` when the final answer
    #: has no rule or ending of its own.  ``"after_user_reasoning"``: the answers after the last
    #: user message that are the last message or have reasoning (:func:`has_reasoning`; Qwen3's
    #: ``loop.index0 > ns.last_query_index and (loop.last or reasoning_content)``).
    final_scope: str = "last"
    #: how an answer's explicit reasoning (``reasoning_content``, else ``thinking``) is read, where
    #: the format renders reasoning: ``"strip_nl"`` with its newlines stripped at both ends (Qwen3's
    #: ``reasoning_content.strip('\n')``), ``"verbatim"`` as given (``{OUTPUT|reasoning_verbatim}``;
    #: MiniMax-M2), ``"trim"`` whitespace-stripped (``{OUTPUT|reasoning_trim}``; Qwen3.5's
    #: ``reasoning_content|trim``); either way the content then holds no reasoning and is not split at
    #: ``</think>``.  ``"refused"`` (``{OUTPUT|no_reasoning_field}``; QwQ): the template never reads
    #: it and splits every content, so a message carrying one is a MessageError (the reasoning goes
    #: in the content as ``<think>...</think>``), never dropped silently.  ``"strip_nl"`` where no
    #: rule renders reasoning (such a format refuses explicit reasoning anyway), and ``"verbatim"``
    #: and ``"trim"`` only with a ``{THINK}`` block (one value per meaning).
    given_reasoning: str = "strip_nl"
    #: an answer with empty content ("" or None) and no tool calls is a MessageError
    #: (``{OUTPUT|no_empty_answer}``: Ministral 3's template raises on one), never rendered
    refuses_empty_answers: bool = False
    #: how tools, tool calls and tool results render; None: the format has no tool support
    tools: ToolFormat | None = None

    def __post_init__(self) -> None:
        if self.prompt_after_answer not in PROMPT_AFTER_ANSWER:
            raise ValueError(f"prompt_after_answer must be one of {PROMPT_AFTER_ANSWER}, "
                             f"got {self.prompt_after_answer!r}")
        if self.final_scope not in FINAL_SCOPES:
            raise ValueError(f"final_scope must be one of {FINAL_SCOPES}, got {self.final_scope!r}")
        if self.given_reasoning not in GIVEN_REASONING:
            raise ValueError(f"given_reasoning must be one of {GIVEN_REASONING}, got {self.given_reasoning!r}")
        if self.refuses_empty_answers and self.assistant.empty is not None:
            raise ValueError("refuses_empty_answers: an empty answer is refused, so it has no {EMPTY} layout")
        rules = [r for r in (self.assistant.rule, self.assistant.final) if r is not None]
        if not any(r.renders_reasoning for r in rules) or (
                self.given_reasoning in ("verbatim", "trim") and not any(r.think is not None for r in rules)):
            _set(self, given_reasoning="strip_nl")
        tf = self.tools
        if tf is not None and tf.renders_list and tf.placement == "after_system" and self.system is not None and (
                self.system.placement != "standalone"):
            raise ValueError("a tool list after the system block needs a standalone system block ({SYSTEM} before "
                             "the first user turn) or none")
        if tf is not None and tf.renders_list and (tf.placement == "system" or tf.system_prefix is not None) and (
                self.system is None or self.system.placement != "standalone"):
            raise ValueError("a tool list in the system block (or a tools system_prefix) needs a standalone "
                             "system block ({SYSTEM})")
        if tf is not None and all(r.identity for r in rules):  # every answer renders as given: one value per meaning
            tf = replace(tf, answers_after_results="rule",
                         call_answers="rule" if tf.call_answers == "verbatim" else tf.call_answers)
            _set(self, tools=tf)
        if tf is not None and "verbatim" in (tf.call_answers, tf.answers_after_results) and any(
                r.think is not None for r in rules):
            raise ValueError("call_answers/answers_after_results verbatim render an answer's content as given: a "
                             "format whose answers render a reasoning block ({THINK}) would drop it there")
        if tf is not None and tf.calls_end_turn and self.assistant.final_suffix is None:
            _set(self, tools=replace(tf, calls_end_turn=False))  # no ending of its own: one value per meaning
        if self.assistant.final is None and self.assistant.final_suffix is None:
            _set(self, final_scope="last",
                 prompt_after_answer="final" if self.prompt_after_answer == "history" else self.prompt_after_answer)

    def final_answers(self, messages: Sequence[dict], add_generation_prompt: bool = False) -> set[int]:
        """The indices of the final answers of ``messages`` (see ``final_scope``; none when the
        generation prompt follows an answer of a ``"history"`` layout)."""
        roles = [m.get("role") for m in messages]
        if not roles or (add_generation_prompt and roles[-1] == "assistant" and self.prompt_after_answer == "history"):
            return set()
        if self.final_scope == "last":
            return {len(roles) - 1} if roles[-1] == "assistant" else set()
        if self.final_scope == "last_answer":
            return {max(i for i, r in enumerate(roles) if r == "assistant")} if "assistant" in roles else set()
        users = [i for i, r in enumerate(roles) if r == "user"]
        after = {i for i, r in enumerate(roles) if r == "assistant" and users and i > users[-1]}
        if self.final_scope == "after_user_reasoning":
            return {i for i in after if i == len(roles) - 1 or has_reasoning(messages[i])}
        return after

    @property
    def reads_reasoning(self) -> bool:
        """Whether an answer may carry explicit reasoning (a rule renders reasoning, and the
        format does not refuse it: ``given_reasoning``)."""
        rules = [r for r in (self.assistant.rule, self.assistant.final) if r is not None]
        return any(r.renders_reasoning for r in rules) and self.given_reasoning != "refused"

    def given(self, message: dict) -> str | None:
        """An answer's explicit reasoning as the format reads it (``given_reasoning``), or None."""
        r = message_reasoning(message)
        if r is None or self.given_reasoning == "verbatim":
            return r
        return r.strip() if self.given_reasoning == "trim" else r.strip("\n")

    def uses(self, name: Literal["BOS", "EOS"]) -> bool:
        """Whether ``{BOS}``/``{EOS}`` appears anywhere in the layout."""
        return any(isinstance(p, SpecialToken) and p.name == name for f in self.fragments() for p in f)

    def fragments(self) -> list[Fragment]:
        """Every literal fragment of the layout."""
        frags = [self.preamble, self.user.prefix, self.user.suffix,
                 self.assistant.prefix, self.assistant.lead, self.assistant.suffix]
        if self.assistant.final_suffix is not None:
            frags.append(self.assistant.final_suffix)
        if self.closing:
            frags.append(self.closing)
        if self.assistant.empty is not None:
            frags.append(self.assistant.empty)
        if self.system is not None:
            frags += [self.system.prefix, self.system.suffix]
            if self.system.absent is not None:
                frags.append(self.system.absent)
        if self.tools is not None and self.tools.system_prefix is not None:
            frags.append(self.tools.system_prefix)
        return frags

    @property
    def dated(self) -> bool:
        """Whether the layout renders the date (``{DATE=...}``)."""
        return any(isinstance(p, DateToken) for f in self.fragments() for p in f)


@dataclass(frozen=True)
class Metadata:
    """What a registry entry or YAML spec file says besides the layout."""

    name: str = "custom"
    description: str = ""
    aliases: tuple[str, ...] = ()
    bos_token: str | None = None
    eos_token: str | None = None
    eot_token: str | None = None
    stop: tuple[str, ...] = ()
    notes: str = ""
    source: str | None = None


@dataclass(frozen=True)
class ChatFormat:
    """A chat format: layout (``structure``) plus metadata.  Build one with ``tmplc.load``."""

    structure: Structure
    meta: Metadata = field(default_factory=Metadata)

    # -- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def bos_token(self) -> str | None:
        """The BOS token string this format renders, or None when it renders no BOS."""
        return self.meta.bos_token if self.structure.uses("BOS") else None

    @property
    def eos_token(self) -> str | None:
        """The tokenizer's EOS token string as declared, or None."""
        return self.meta.eos_token

    @property
    def eot_token(self) -> str | None:
        """The end-of-turn token string (what ends an assistant turn), or None."""
        return self.meta.eot_token or self.meta.eos_token

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Strings at which generation must stop: declared ``stop``, else the end-of-turn token."""
        if self.meta.stop:
            return self.meta.stop
        return tuple(t for t in dict.fromkeys([self.meta.eot_token, self.meta.eos_token]) if t)

    @property
    def default_system(self) -> str | None:
        return self.structure.system.default if self.structure.system else None

    def with_meta(self, **changes: Any) -> "ChatFormat":
        """A copy with metadata fields replaced."""
        return replace(self, meta=replace(self.meta, **changes))

    def without_tools(self) -> "ChatFormat":
        """The text part: the same format without its tool format (conversations without tools,
        tool calls or tool results render alike; tools are refused, never dropped)."""
        return self if self.structure.tools is None else replace(self, structure=replace(self.structure, tools=None))

    # -- meaning --------------------------------------------------------------------
    def segments(
        self,
        messages: Sequence[dict],
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        date: _dt.date | None = None,
        tools: Sequence[dict] | None = None,
    ) -> list["Segment"]:
        """The rendered conversation as pieces, each with its role, part and trainability."""
        from tmplc.render import render_segments

        return render_segments(self, messages, add_generation_prompt, continue_final_message,
                               bos_token=bos_token, eos_token=eos_token, date=date, tools=tools)

    def render(
        self,
        messages: Sequence[dict],
        add_generation_prompt: bool = False,
        continue_final_message: bool = False,
        *,
        bos_token: str | None = None,
        eos_token: str | None = None,
        date: _dt.date | None = None,
        tools: Sequence[dict] | None = None,
    ) -> str:
        """Render a conversation.  This is the reference every target must reproduce byte for byte.
        ``date``: for a format with ``{DATE=...}``, the date to render (default: today).
        ``tools``: tool definitions (transformers' ``[{"type": "function", "function": {...}}]``),
        for a format with tool support (``structure.tools``); messages may then carry
        ``tool_calls`` and ``role: "tool"`` results (see ``docs/tools.md``)."""
        return "".join(s.text for s in self.segments(
            messages, add_generation_prompt, continue_final_message,
            bos_token=bos_token, eos_token=eos_token, date=date, tools=tools))

    def with_date(self, date: _dt.date) -> "ChatFormat":
        """A copy whose ``{DATE=...}`` pieces are fixed text for ``date`` (training data that
        must not change with the day it is built)."""
        def fix(frag: Fragment) -> Fragment:
            return fragment(Text(p.render(date)) if isinstance(p, DateToken) else p for p in frag)

        st = self.structure
        system = st.system and replace(st.system, prefix=fix(st.system.prefix), suffix=fix(st.system.suffix),
                                       absent=None if st.system.absent is None else fix(st.system.absent))
        new = replace(st, preamble=fix(st.preamble), system=system,
                      user=replace(st.user, prefix=fix(st.user.prefix), suffix=fix(st.user.suffix)),
                      assistant=replace(st.assistant, prefix=fix(st.assistant.prefix), lead=fix(st.assistant.lead),
                                        suffix=fix(st.assistant.suffix),
                                        final_suffix=None if st.assistant.final_suffix is None
                                        else fix(st.assistant.final_suffix),
                                        empty=None if st.assistant.empty is None else fix(st.assistant.empty)),
                      closing=fix(st.closing))
        if st.tools is not None and st.tools.system_prefix is not None:
            new = replace(new, tools=replace(st.tools, system_prefix=fix(st.tools.system_prefix)))
        return replace(self, structure=new)

    # -- targets --------------------------------------------------------------------
    def to_jinja(self, *, generation_tags: bool = True) -> str:
        """An HF chat template (``tokenizer.chat_template``) rendering exactly like ``render``."""
        from tmplc.targets.jinja import to_jinja

        return to_jinja(self, generation_tags=generation_tags)

    def to_spec(self) -> str:
        """Canonical two-repetition spec text; parsing it gives back ``self.structure``."""
        from tmplc.targets.spec import to_spec

        return to_spec(self.structure)

    def to_yaml(self) -> str:
        """A registry-style YAML spec file: canonical spec plus metadata."""
        from tmplc.targets.spec import to_yaml

        return to_yaml(self)

    @property
    def trims(self) -> bool:
        """Whether any content is ``|trim``-med (a transformation Ollama templates cannot carry)."""
        st = self.structure
        return st.user.trim or st.assistant.trim or bool(st.system and st.system.trim)

    def to_ollama(self, from_: str | None = None, *, allow_untrimmed: bool = False) -> str:
        """A complete Ollama Modelfile (FROM, TEMPLATE in messages mode, SYSTEM, PARAMETER stop).

        Formats with ``|trim`` are refused unless ``allow_untrimmed=True`` (then contents are
        rendered as sent, and the Modelfile says so)."""
        from tmplc.targets.ollama import to_ollama

        return to_ollama(self, from_=from_, allow_untrimmed=allow_untrimmed)

    def to_llamacpp(self) -> "Any":
        """The llama.cpp target: GGUF ``tokenizer.chat_template``, built-in name, server/cli flags."""
        from tmplc.targets.llamacpp import to_llamacpp

        return to_llamacpp(self)

    def tokenize(self, messages: Sequence[dict], tokenizer: Any, **kwargs: Any) -> dict:
        """Token ids, labels and attention mask with exact loss masks (see tmplc.formatter)."""
        from tmplc.formatter import tokenize_messages

        return tokenize_messages(self, messages, tokenizer, **kwargs)

    def tokenize_pair(self, prompt: Any, chosen: Any, rejected: Any, tokenizer: Any, **kwargs: Any) -> dict:
        """A preference pair as TRL's separate columns (``prompt_input_ids``, ``chosen_input_ids``,
        ``rejected_input_ids``, ``chosen_labels``, ``rejected_labels``), split exactly or refused
        (see tmplc.formatter.preference)."""
        from tmplc.formatter.preference import tokenize_pair

        return tokenize_pair(self, prompt, chosen, rejected, tokenizer, **kwargs)

    def to_dict(self) -> dict:
        """The IR as JSON-serialisable data (``tmplc compile --to json``)."""
        from tmplc.targets.json_ir import to_dict

        return to_dict(self)
