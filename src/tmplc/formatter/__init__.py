"""Training formatter: token-exact loss masks from the reference renderer.

::

    out = fmt.tokenize(messages, tokenizer)          # = tokenize_messages(fmt, messages, tokenizer)
    out["input_ids"], out["labels"], out["attention_mask"], out["assistant_masks"]

    ds = ds.map(tokenize_batch(fmt, tokenizer), batched=True, num_proc=8,
                remove_columns=ds.column_names)
    ds, summary = format_dataset(fmt, ds, tokenizer, max_seq_length=4096)   # counted, never silent
    collator = DataCollatorForTmplc(tokenizer)        # pads labels with -100 by position

Rules (straddling tokens, BOS, special-token text, truncation): see ``tmplc.formatter.core``;
policies: ``tmplc.formatter.policies``.  Nothing here imports transformers, torch or datasets at
import time.
"""

from tmplc.formatter.batch import BatchTokenizer, format_dataset, tokenize_batch
from tmplc.formatter.collator import DataCollatorForTmplc
from tmplc.formatter.core import IGNORE, RowDropped, encode_rows, tokenize_messages
from tmplc.formatter.policies import POLICIES, Policy, get_policy
from tmplc.formatter.summary import FormatSummary
from tmplc.formatter.tokenizer_info import FormatterWarning, TokenizerInfo, end_of_turn, tokenizer_info

__all__ = [
    "BatchTokenizer", "DataCollatorForTmplc", "FormatSummary", "FormatterWarning", "IGNORE", "POLICIES",
    "Policy", "RowDropped", "TokenizerInfo", "encode_rows", "end_of_turn", "format_dataset", "get_policy",
    "tokenize_batch", "tokenize_messages", "tokenizer_info",
]
