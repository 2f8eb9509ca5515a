"""``tmplc train``: LoRA SFT on tmplc's exact masks, with leak-free packing.

::

    result = tmplc.train(model="DIR", data="data.jsonl", template="llama3", out="OUT", max_steps=60)
    result = tmplc.train(config="train.yaml", learning_rate=1e-4)      # YAML keys = option names

Modules: ``config`` (options), ``data`` (formatting + cache), ``packing`` (micro-batches),
``attention`` (document masks), ``loss`` (fused chunked cross-entropy), ``model`` (loading, LoRA),
``loop`` (the run), ``checkpoints``, ``diskguard``, ``log``, ``save`` (what export reads),
``doctor_gate``, ``ray_data`` (formatting on Ray).  Importing this package does not import torch.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from tmplc.train.config import TrainConfig, TrainError, TrainRefused, load_yaml, make_config


def train(config: "str | TrainConfig | dict | None" = None, **options: Any):
    """Run a training job; ``config`` is a YAML path, a dict of options or a TrainConfig.

    Keyword options override the config's.  Returns ``tmplc.train.loop.TrainResult``."""
    from tmplc.train.loop import train as _run

    if isinstance(config, TrainConfig):
        cfg = make_config({k: v for k, v in config.to_dict().items()} | {"data": config.data}, **options)
    else:
        values = load_yaml(config) if isinstance(config, str) else dict(config or {})
        cfg = make_config(values, **options)
    return _run(cfg)


class _CallableModule(types.ModuleType):
    """``tmplc.train(...)`` calls ``train``; ``tmplc.train.config`` etc. stay submodules."""

    def __call__(self, config=None, **options):
        return train(config, **options)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["TrainConfig", "TrainError", "TrainRefused", "load_yaml", "make_config", "train"]
