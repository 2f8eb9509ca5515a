"""``tmplc train --model DIR --data FILE --template SPEC --out DIR [options]`` (or ``--config train.yaml``).

Flags are generated from ``tmplc.train.config.TrainConfig``: every flag is also a YAML key
(``--max-steps 60`` == ``max_steps: 60``); flags given on the command line override the file.
"""

from __future__ import annotations

import argparse
import sys

_TYPES = {"int": int, "float": float, "str": str}


def _type(annotation: str):
    for name, t in _TYPES.items():
        if annotation.startswith(name):
            return t
    return str


def add_parser(sub) -> argparse.ArgumentParser:
    from tmplc.train.config import FIELDS

    p = sub.add_parser(
        "train", help="LoRA fine-tuning on tmplc's exact masks (leak-free packing)",
        description="Check (doctor), format (tmplc's formatter, cached), and train LoRA adapters with the "
                    "talk's defaults; packs whole conversations without cross-conversation attention; saves "
                    "the adapter, the tokenizer with the training format as chat_template, generation_config "
                    "with the end-of-turn stop id, and tmplc.yaml (the format export uses). Every option is "
                    "also a key of --config FILE.")
    p.add_argument("--config", metavar="FILE", help="YAML file of options (keys: the flag names)")
    for f in FIELDS:
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata.get("help", "")
        kw = {"dest": f.name, "default": None, "help": help_}
        if f.type in ("bool", bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif f.type in ("list", list):
            if f.name == "target_modules":
                p.add_argument(flag, nargs="+", metavar=f.metadata.get("metavar", "X"), **kw)
            else:
                p.add_argument(flag, action="append", metavar=f.metadata.get("metavar", "X"), **kw)
        else:
            extra = {k: f.metadata[k] for k in ("choices", "metavar") if k in f.metadata}
            p.add_argument(flag, type=_type(str(f.type)), **extra, **kw)
    return p


def run(args) -> int:
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from tmplc.train.config import FIELDS, load_yaml, make_config
    from tmplc.train.loop import train

    values = load_yaml(args.config) if args.config else {}
    given = {f.name: getattr(args, f.name) for f in FIELDS if getattr(args, f.name) is not None}
    cfg = make_config(values, **given)
    result = train(cfg)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"tmplc train: {result.steps} steps, final loss {result.loss if result.loss is None else round(result.loss, 4)}, "
              f"attention {result.attention}{' (fallback: ' + result.fallback + ')' if result.fallback else ''}, "
              f"loss {result.loss_mode}; saved to {result.out}" + (f" (merged: {result.merged})" if result.merged else ""),
              file=sys.stderr)
    return 0
