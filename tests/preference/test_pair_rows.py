"""Reading preference rows in the common dataset shapes (``pair_from_row``), and bad rows named."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tmplc.formatter.preference import PairError, pair_from_row, split_shared_prompt

from strategies import conversations


def U(text):
    return {"role": "user", "content": text}


def A(text):
    return {"role": "assistant", "content": text}


def S(text):
    return {"role": "system", "content": text}


def test_strings():
    assert pair_from_row({"prompt": "Q?", "chosen": "yes", "rejected": "no"}) == ([U("Q?")], [A("yes")], [A("no")])


def test_trl_conversational_prompt_and_completions():
    row = {"prompt": [S("sys"), U("Q?")], "chosen": [A("yes")], "rejected": [A("no"), U("sure?"), A("no!")]}
    assert pair_from_row(row) == ([S("sys"), U("Q?")], [A("yes")], [A("no"), U("sure?"), A("no!")])


def test_one_message_and_aliases():
    row = {"Prompt": [{"from": "human", "value": "Q?"}], "Chosen": {"from": "gpt", "value": "yes"},
           "REJECTED": "no"}
    assert pair_from_row(row) == ([U("Q?")], [A("yes")], [A("no")])


def test_whole_conversations_share_their_prompt():
    chosen = [S("s"), U("a"), A("b"), U("c"), A("good")]
    rejected = [S("s"), U("a"), A("b"), U("c"), A("bad")]
    assert pair_from_row({"chosen": chosen, "rejected": rejected}) == (chosen[:4], [A("good")], [A("bad")])


def test_ultrafeedback_prompt_column_with_whole_conversations():
    row = {"prompt": "Q?", "chosen": [U("Q?"), A("yes")], "rejected": [U("Q?"), A("no")], "score_chosen": 8.0}
    assert pair_from_row(row) == ([U("Q?")], [A("yes")], [A("no")])


def test_prompt_column_must_match_the_shared_prompt():
    row = {"prompt": "Other?", "chosen": [U("Q?"), A("yes")], "rejected": [U("Q?"), A("no")]}
    with pytest.raises(PairError, match="the prompt column is not the prompt that chosen and rejected share"):
        pair_from_row(row)


def test_anthropic_hh_transcripts():
    row = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Joke?\n\nAssistant: Knock knock.",
           "rejected": "\n\nHuman: Hi\n\nAssistant: Hello\n\nHuman: Joke?\n\nAssistant: No."}
    assert pair_from_row(row) == ([U("Hi"), A("Hello"), U("Joke?")], [A("Knock knock.")], [A("No.")])


def test_shared_prefix_backs_off_to_an_assistant_reply():
    # both continue the shared [u, a] differently: the prompt is [u], and both completions start with a
    p, c, r = split_shared_prompt([U("u"), A("a"), A("x")], [U("u"), A("a"), A("y")])
    assert (p, c, r) == ([U("u")], [A("a"), A("x")], [A("a"), A("y")])


@pytest.mark.parametrize("row, reason", [
    ({"prompt": "Q", "chosen": "a"}, "no 'rejected' column"),
    ({"prompt": "Q", "chosen": None, "rejected": "b"}, "no 'chosen' column"),
    ([1, 2], "a row must be an object with columns, got array"),
    ({"chosen": [U("A"), A("x")], "rejected": [U("B"), A("y")]}, "share no prompt: their first messages differ"),
    ({"chosen": [U("A"), A("x")], "rejected": [U("A"), A("x")]}, "chosen and rejected are the same conversation"),
    ({"chosen": "yes", "rejected": "no"}, "chosen is text without a prompt column, and not an HH transcript"),
    ({"chosen": [A("yes")], "rejected": [A("no")]}, "no 'prompt' column, and chosen/rejected are completions"),
    ({"prompt": "Q", "chosen": [U("more")], "rejected": "no"}, "chosen must start with an assistant message"),
    ({"prompt": [U("Q"), A("half")], "chosen": "a", "rejected": "b"},
     "the prompt ends with an assistant message (message 1)"),
    ({"prompt": "Q", "chosen": [A("a")], "rejected": [{"role": "robot", "content": "b"}]},
     "rejected message 0: unknown role 'robot'"),
    ({"prompt": [U("Q"), {"role": "user"}], "chosen": "a", "rejected": "b"}, "prompt message 1: no content key"),
    ({"prompt": "Q", "chosen": [], "rejected": "b"}, "chosen: chosen is empty"),
    ({"prompt": "Q", "chosen": 5, "rejected": "b"}, "chosen: chosen must be a list of messages, got int"),
    ({"prompt": "Q", "chosen": "a\ud800", "rejected": "b"}, "chosen message 0: content holds a lone surrogate"),
])
def test_bad_rows_say_why(row, reason):
    with pytest.raises(PairError) as e:
        pair_from_row(row)
    assert e.value.kind == "invalid"
    assert reason in e.value.reason, e.value.reason


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=80)
@given(prompt=conversations(text=_text, min_exchanges=1, max_exchanges=3, end_with_assistant=False),
       chosen=st.lists(_text, min_size=1, max_size=3), rejected=st.lists(_text, min_size=1, max_size=3))
@example(prompt=[U("q")], chosen=["same", "a"], rejected=["same", "b"])
@example(prompt=[U("")], chosen=[""], rejected=["", ""])
def test_whole_conversations_give_back_prompt_and_completions(prompt, chosen, rejected):
    """chosen/rejected written as whole conversations (prompt + completion) read back as the prompt
    and the two completions, whenever the completions' first replies differ."""
    def turns(texts):  # an assistant reply, then user/assistant exchanges
        out = [A(texts[0])]
        for t in texts[1:]:
            out += [U("more?"), A(t)]
        return out

    c, r = turns(chosen), turns(rejected)
    row = {"chosen": prompt + c, "rejected": prompt + r}
    if c[0] == r[0]:
        # the first replies agree: the shared prompt may run past them (or they are the same conversation)
        if c == r:
            with pytest.raises(PairError, match="the same conversation"):
                pair_from_row(row)
        else:
            p, c2, r2 = pair_from_row(row)
            assert p[:len(prompt)] == prompt and p + c2 == prompt + c and p + r2 == prompt + r
            assert c2[0]["role"] == r2[0]["role"] == "assistant" != p[-1]["role"]
        return
    assert pair_from_row(row) == (prompt, c, r)
