"""The Ray Data formatting path (a local Ray instance) gives exactly the arrays and the summary of
the in-process path."""

from __future__ import annotations

import numpy as np
import pytest


import tmplc
from tmplc.train import make_config
from tmplc.train.data import format_rows

from conftest import require_module, load_tokenizer

require_module("ray.data")
from train_fixtures import conversations


def test_ray_map_batches_equals_in_process_formatting():
    rows = conversations(30)
    rows.append({"messages": [{"role": "user", "content": "no answer"}]})   # dropped: nothing to train
    rows.append({"nonsense": 1})                                               # invalid row
    tok = load_tokenizer("llama3")
    fmt = tmplc.load("llama3")
    base = dict(model="m", template="llama3", out="o", data=rows, max_seq_length=48)
    plain = format_rows(make_config(base), fmt, tok)
    ray = format_rows(make_config(base, ray=True, num_proc=1), fmt, tok)
    assert np.array_equal(plain.offsets, ray.offsets)
    assert np.array_equal(plain.ids, ray.ids) and np.array_equal(plain.labels, ray.labels)
    assert ray.summary == plain.summary
    assert ray.summary["rows_in"] == 32 and ray.summary["rows_out"] == len(ray) < 31
    assert ray.summary["truncated"] > 0
