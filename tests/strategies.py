"""Hypothesis strategies shared by every test module: conversations and chat formats.

Conversations stress what breaks templates: unicode, newlines and spaces at content edges,
Jinja syntax and special-token text inside content, empty content, with/without system,
1-6 exchanges.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tmplc.ir import ChatFormat, Metadata, SpecialToken, Structure, SystemBlock, Text, Turn, fragment

NASTY = ["{{ x }}", "{% if %}", "{#", "<|eot_id|>", "<|im_end|>", "</s>", "<s>", "[INST]",
         "<start_of_turn>", "\\", "'", '"', "\n", "\n\n", " ", "\t", "}}", "{", "é", "日本", "🙂",
         "<think>", "</think>"]

content_text = st.one_of(
    st.just(""),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(max_size=6)), max_size=6).map("".join),
)

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
# {PROMPT=...}: what reasoning templates add to the generation prompt only
_prompt_only = st.one_of(st.just(""), st.just(""), st.sampled_from(["<think>\n", "<think>", " ", "\n\n"]))


@st.composite
def structures(draw):
    """Random layouts that a spec can express (role markers keep user and assistant distinct)."""
    user = Turn(draw(_frag("U:")), draw(_frag()), draw(st.booleans()), trim_side=draw(_sides))
    # the lead ({REPLY}): text the model writes before the content, e.g. Mistral's " "
    lead = draw(st.one_of(st.just(()), st.just((Text(" "),)), _frag(allow_tokens=False)))
    assistant = Turn(draw(_frag("A:")), draw(_frag()), draw(st.booleans()), lead, draw(_sides),
                     draw(_prompt_only), draw(st.sampled_from(["", "", "last", "first"])))
    kind = draw(st.sampled_from(["none", "standalone", "first_user"]))
    default = draw(st.one_of(st.none(), st.text(st.characters(blacklist_characters="{}"), max_size=8)))
    if kind == "none":
        preamble = draw(_frag())
        system = None
    elif kind == "standalone":
        # any preamble: a fixed text before the system block (GLM's "[gMASK]<sop>") needs a
        # {SPLIT} before the block in the spec; every target renders it before the block
        preamble = draw(st.one_of(st.sampled_from([(), (SpecialToken("BOS"),)]), _frag()))
        system = SystemBlock("standalone", draw(_frag("S:", allow_tokens=False)), draw(_frag()),
                             draw(st.booleans()), default, draw(_sides), draw(st.booleans()))
    else:
        preamble = draw(_frag())
        system = SystemBlock("first_user", draw(_frag("<<S>>", allow_tokens=False)), draw(_frag()),
                             draw(st.booleans()), default, draw(_sides), draw(st.booleans()))
    return Structure(preamble, system, user, assistant)


def chat_formats(structure_strategy=None):
    return (structure_strategy or structures()).map(
        lambda s: ChatFormat(s, Metadata(name="generated", bos_token="<s>", eos_token="</s>")))
