"""Small real tokenizers built with the ``tokenizers`` library (no hub access needed)."""

from __future__ import annotations

import functools

DS_BOS = "<｜begin▁of▁sentence｜>"
DS_EOS = "<｜end▁of▁sentence｜>"
DS_SPECIALS = [DS_BOS, DS_EOS, "<｜User｜>", "<｜Assistant｜>"]

CORPUS = [
    "Hello world! How are you today? I am fine, thank you.",
    "The quick brown fox jumps over the lazy dog. 0123456789",
    "def f(x):\n    return x * 2\n\n# comment\n",
    "Bonjour le monde. Grüße! 日本語 🙂",
] * 20


@functools.lru_cache(maxsize=None)
def deepseek_like(pad_is_eos: bool = True):
    """A byte-level BPE tokenizer with DeepSeek-V3's special tokens, where pad == EOS
    (as in the real DeepSeek-V3 tokenizer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=DS_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=DS_BOS, eos_token=DS_EOS,
                                   pad_token=DS_EOS if pad_is_eos else None)
