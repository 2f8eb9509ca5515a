"""tmplc's formatter with TRL's SFTTrainer, on CPU, offline (README example, issue 11.13).

A tiny random Llama (built from a config: no download) with the real Llama-3 tokenizer from the
test fixtures; ShareGPT rows normalised in Python with ``tmplc.data``; ``format_dataset`` gives
``input_ids``/``labels``/``attention_mask``; SFTTrainer takes the tokenized dataset as it is.
The script checks that the labels the model sees are tmplc's, with TRL's default collator and
with ``DataCollatorForTmplc``, then trains a few steps.

    pip install trl==1.16.0
    python scripts/example_trl_sft.py [--tokenizer .cache/fixtures/llama3]
"""

from __future__ import annotations

import argparse
import tempfile


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default=".cache/fixtures/llama3")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()

    import datasets
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    import tmplc
    from tmplc.data import normalize_rows
    from tmplc.formatter import IGNORE, DataCollatorForTmplc, format_dataset

    tok = AutoTokenizer.from_pretrained(args.tokenizer)  # a local folder: nothing is downloaded
    if "<|finetune_right_pad_id|>" in tok.get_vocab():  # a pad token that is not the EOS (see the warning
        tok.pad_token = "<|finetune_right_pad_id|>"    # tmplc prints when they are the same)
    elif tok.pad_token is None:
        tok.pad_token = tok.eos_token
    fmt = tmplc.load("llama-3")

    # other shapes, normalised in Python (ShareGPT here; Alpaca, prompt/completion, merged prompts too)
    rows = [{"conversations": [{"from": "human", "value": f"What is {a} + {a}?"},
                               {"from": "gpt", "value": f"{2 * a}."}]} for a in range(16)]
    convs, report = normalize_rows(rows)
    assert report.rows_rejected == 0
    ds = datasets.Dataset.from_dict({"messages": [m for _, m in convs]})
    train, summary = format_dataset(fmt, ds, tok)
    print(summary)
    train = train.select_columns(["input_ids", "labels", "attention_mask"])

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg)

    for name, collator in (("TRL's default collator", None), ("DataCollatorForTmplc", DataCollatorForTmplc(tok))):
        with tempfile.TemporaryDirectory() as out:
            conf = SFTConfig(output_dir=out, max_steps=args.steps, per_device_train_batch_size=4, learning_rate=1e-3,
                             logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", max_length=None,
                             dataloader_num_workers=0, seed=0)
            trainer = SFTTrainer(model=model, args=conf, train_dataset=train, processing_class=tok,
                                 **({"data_collator": collator} if collator is not None else {}))
            batch = next(iter(trainer.get_train_dataloader()))
            for k in range(batch["input_ids"].shape[0]):
                ids = [i for i, m in zip(batch["input_ids"][k].tolist(), batch["attention_mask"][k].tolist()) if m]
                row = next(r for r in train if r["input_ids"] == ids)  # the row this is (shuffled)
                labels = batch["labels"][k].tolist()[:len(ids)]
                assert labels == row["labels"], (name, labels, row["labels"])
                assert all(x == IGNORE for x in batch["labels"][k].tolist()[len(ids):])  # padding masked
            trained = sum(x != IGNORE for x in batch["labels"][0].tolist())
            print(f"{name}: labels in the batch are tmplc's (row 0: {trained} of "
                  f"{int(batch['attention_mask'][0].sum())} tokens trained: the answer and <|eot_id|>)")
            result = trainer.train()
            print(f"{name}: trained {result.global_step} steps, loss {result.training_loss:.3f}")


if __name__ == "__main__":
    main()
