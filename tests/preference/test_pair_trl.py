"""tmplc's pairs against TRL's own DPO tokenization (trl 1.16.0, pinned in scripts/setup.sh).

TRL 1.16's ``DPOTrainer._prepare_dataset`` (the method ``DPOTrainer.__init__`` runs on the train
set) tokenizes a conversational row as ``apply_chat_template(prompt, add_generation_prompt=True)``
and ``apply_chat_template(prompt + chosen)``, and cuts the completion at their common token
prefix.  Run on a real trainer (a tiny random model, CPU) with the format's Jinja (or the
fixture's real template) as the tokenizer's chat template:

* where the split is clean, TRL's ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` equal tmplc's
  ``prompt_input_ids`` / ``chosen_input_ids`` / ``rejected_input_ids``;
* where a token merges across the seam, tmplc refuses and TRL's prompt is shorter than the prompt
  generation tokenizes (TRL's documented cut);
* TRL's text path on a rendered prompt doubles Gemma's BOS (the double-BOS history); tmplc's has one;
* tmplc's columns, renamed by ``TRL_COLUMNS``, train one DPO step through TRL's own collator.
"""

from __future__ import annotations

import copy
import math
import warnings

import pytest

import tmplc
from tmplc.formatter.preference import TRL_COLUMNS, PairError

from conftest import load_tokenizer, require_module

PAIRS = [
    ([{"role": "user", "content": "What is 2+2?"}], "4, of course.", "5"),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Colour of the sky?"}],
     "Blue.", "Green, I think."),
    ([{"role": "user", "content": "unicode é 日本 🙂"}], "  spaced  ", "tab\tand\nnewline"),
    ([{"role": "user", "content": "Hi"}], "\nHello", "Hello"),          # Qwen: "\n" + "\n" merge
]

CASES = {  # fixture -> (registry entry, use the fixture's real template)
    "gemma3": ("gemma-3", True),
    "qwen3": ("qwen3-thinking", True),
    "llama3": ("llama-3", False),
    "llama2": ("llama-2", False),
}

_TRAINER: dict = {}


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


def _trainer(tmp_path_factory):
    """A real DPOTrainer on a tiny random Qwen-vocabulary model (CPU), built once."""
    if "t" not in _TRAINER:
        require_module("trl", "run: bash scripts/setup.sh (pip install trl==1.16.0)")
        from datasets import Dataset
        from transformers import LlamaConfig, LlamaForCausalLM
        from trl import DPOConfig, DPOTrainer

        tok = load_tokenizer("qwen3")
        cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1)
        args = DPOConfig(output_dir=str(tmp_path_factory.mktemp("dpo")), report_to=[], max_length=None,
                         use_cpu=True, per_device_train_batch_size=2, max_steps=1, logging_steps=1, save_strategy="no")
        rows = [{"prompt": p, "chosen": [{"role": "assistant", "content": c}],
                 "rejected": [{"role": "assistant", "content": r}]} for p, c, r in PAIRS[:2]]
        _TRAINER["t"] = _quiet(DPOTrainer, model=LlamaForCausalLM(cfg), ref_model=LlamaForCausalLM(cfg), args=args,
                               train_dataset=Dataset.from_list(rows), processing_class=tok)
        _TRAINER["cfg"] = cfg
    return _TRAINER["t"]


def _trl_rows(trainer, tok, rows):
    from datasets import Dataset

    ds = _quiet(trainer._prepare_dataset, Dataset.from_list(rows), tok, trainer.args, "train")
    return [{k: ds[i][k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for i in range(len(ds))]


@pytest.mark.parametrize("fixture", list(CASES))
def test_equal_to_trl_dpo_tokenization(fixture, tmp_path_factory):
    trainer = _trainer(tmp_path_factory)
    name, real = CASES[fixture]
    fmt = tmplc.load(name)
    tok = copy.deepcopy(load_tokenizer(fixture))
    if not real:
        tok.chat_template = fmt.to_jinja()
    rows = [{"prompt": p, "chosen": [{"role": "assistant", "content": c}],
             "rejected": [{"role": "assistant", "content": r}]} for p, c, r in PAIRS]
    theirs = _trl_rows(trainer, tok, rows)
    for (p, c, r), trl in zip(PAIRS, theirs):
        # no seam merges here (qwen3-thinking's think block, llama-3's trim, SentencePiece's "▁"):
        # every pair is accepted, and equal to TRL's
        ours = _quiet(fmt.tokenize_pair, p, c, r, tok)
        assert {TRL_COLUMNS[k]: ours[k] for k in TRL_COLUMNS} == trl, (fixture, p, c, r)


def test_qwen3_merge_refused_where_trl_cuts(tmp_path_factory):
    trainer = _trainer(tmp_path_factory)
    tok = copy.deepcopy(load_tokenizer("qwen3"))
    fmt = tmplc.load("qwen3")
    tok.chat_template = fmt.to_jinja()
    p, c, r = PAIRS[3]
    (trl,) = _trl_rows(trainer, tok, [{"prompt": p, "chosen": [{"role": "assistant", "content": c}],
                                       "rejected": [{"role": "assistant", "content": r}]}])
    with pytest.raises(PairError, match="merges across the prompt/chosen boundary"):
        _quiet(fmt.tokenize_pair, p, c, r, tok)
    alone = tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True)["input_ids"]
    assert trl["prompt_ids"] == alone[:-1]          # TRL dropped the generation prompt's last "\n"
    assert tok.convert_ids_to_tokens(trl["chosen_ids"][:1]) == ["ĊĊ"]


def test_trl_text_path_doubles_gemma_bos_tmplc_does_not(tmp_path_factory):
    trainer = _trainer(tmp_path_factory)
    tok = load_tokenizer("gemma3")
    fmt = tmplc.load("gemma-3")
    p, c, r = PAIRS[0]
    text = fmt.render(p, add_generation_prompt=True, bos_token=tok.bos_token, eos_token=tok.eos_token)
    assert text.startswith("<bos>")
    (trl,) = _trl_rows(trainer, tok, [{"prompt": text, "chosen": c + "<end_of_turn>\n",
                                       "rejected": r + "<end_of_turn>\n"}])
    bos = tok.bos_token_id
    assert trl["prompt_ids"][:2] == [bos, bos]
    ours = _quiet(fmt.tokenize_pair, p, c, r, tok)
    assert ours["prompt_input_ids"][0] == bos and ours["prompt_input_ids"].count(bos) == 1


def test_tmplc_columns_train_a_dpo_step_through_trls_collator(tmp_path_factory):
    trainer = _trainer(tmp_path_factory)
    from datasets import Dataset
    from transformers import LlamaForCausalLM
    from trl import DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    tok = load_tokenizer("qwen3")
    fmt = tmplc.load("qwen3")
    cols = [_quiet(fmt.tokenize_pair, p, c, r, tok) for p, c, r in PAIRS[:3]]
    rows = [{TRL_COLUMNS.get(k, k): v for k, v in x.items() if k in TRL_COLUMNS} for x in cols]
    batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(rows[:2])
    # chosen first, then rejected: the completion mask covers exactly the completion ids
    for i, x in enumerate(cols[:2]):
        n, m = len(x["prompt_input_ids"]), len(x["chosen_input_ids"])
        assert batch["input_ids"][i, :n + m].tolist() == x["prompt_input_ids"] + x["chosen_input_ids"]
        assert batch["completion_mask"][i].tolist()[:n + m] == [0] * n + [1] * m

    class Pretokenized(DPOTrainer):
        def _prepare_dataset(self, dataset, *args, **kwargs):  # the columns are ready: skip TRL's tokenization
            return dataset

    cfg = _TRAINER["cfg"]
    t = _quiet(Pretokenized, model=LlamaForCausalLM(cfg), ref_model=LlamaForCausalLM(cfg), args=trainer.args,
               train_dataset=Dataset.from_list(rows), processing_class=tok)
    out = _quiet(t.train)
    assert out.global_step == 1 and math.isfinite(out.training_loss)
