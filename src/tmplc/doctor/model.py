"""What the doctor reads from a model folder, lazily.

A :class:`ModelFolder` holds the JSON files (``config.json``, ``generation_config.json``,
``tokenizer_config.json``, ``tokenizer.json``, ``chat_template.jinja``) and knows where the
embedding and lm_head tensors are (``*.safetensors``, with or without
``model.safetensors.index.json``) without reading any tensor data: shapes and dtypes come from
the safetensors headers (``safe_open``).  The rows are read by :mod:`tmplc.doctor.weights`, in
chunks.  The tokenizer is loaded (transformers ``AutoTokenizer``) only when asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from tmplc.errors import TmplcError


class DoctorInputError(TmplcError, ValueError):
    """The path is not something the doctor can check (the CLI exits 2)."""


EMBED_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight",
                  "embeddings.weight", "embed_in.weight")
HEAD_NAMES = ("lm_head.weight", "embed_out.weight", "output.weight")


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives: file, name, shape, dtype (from the safetensors header)."""

    file: Path
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def rows(self) -> int:
        return self.shape[0]


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DoctorInputError(f"{path}: cannot read JSON: {e}") from None


def token_text(v: Any) -> str | None:
    """A special-token entry of tokenizer_config.json (string or AddedToken dict) as text."""
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def as_id_list(v: Any) -> list[int]:
    if v is None:
        return []
    if isinstance(v, int):
        return [v]
    if isinstance(v, list):
        return [x for x in v if isinstance(x, int)]
    return []


class ModelFolder:
    """A model folder or a tokenizer-only folder (see the module docstring)."""

    def __init__(self, path: str | Path, tokenizer: Any = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise DoctorInputError(f"{self.path}: not a folder (expected a model folder, a tokenizer folder "
                                   "or a .gguf file)")
        p = self.path
        self.config: dict | None = read_json(p / "config.json") if (p / "config.json").is_file() else None
        self.generation_config: dict | None = (read_json(p / "generation_config.json")
                                               if (p / "generation_config.json").is_file() else None)
        self.tokenizer_config: dict = (read_json(p / "tokenizer_config.json")
                                       if (p / "tokenizer_config.json").is_file() else {})
        jinja = p / "chat_template.jinja"
        self.chat_template_jinja: str | None = jinja.read_text(encoding="utf-8") if jinja.is_file() else None
        self._tokenizer = tokenizer
        self._light = None
        if tokenizer is None and not (p / "tokenizer.json").is_file() and not (p / "tokenizer.model").is_file():
            raise DoctorInputError(f"{p}: no tokenizer.json (or tokenizer.model) in this folder: the doctor needs "
                                   "the tokenizer the model is trained and served with")
        self.shards = sorted(p.glob("*.safetensors"))

    # -- tokenizer ---------------------------------------------------------------------------
    @property
    def tokenizer(self):
        """The HF tokenizer of the folder (loaded once, on first use)."""
        if self._tokenizer is None:
            try:
                from transformers import AutoTokenizer
            except ImportError:  # pragma: no cover
                raise DoctorInputError("tmplc check needs transformers: pip install transformers") from None
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.path))
            except Exception as e:  # noqa: BLE001 - any loader failure is bad input
                raise DoctorInputError(f"{self.path}: transformers cannot load this tokenizer: {e}") from None
        return self._tokenizer

    @property
    def check_tokenizer(self):
        """The tokenizer the checks tokenize with: the one given, else a :class:`LightTokenizer`
        (``tokenizers`` only, no transformers import) when it behaves as transformers' would, else
        :attr:`tokenizer`."""
        if self._tokenizer is None and self._light is None:
            from tmplc.doctor.light_tokenizer import light_tokenizer

            self._light = light_tokenizer(self.path, self.tokenizer_config) or False
        return self._light or self.tokenizer if self._tokenizer is None else self._tokenizer

    @property
    def config_chat_template(self) -> Any:
        return self.tokenizer_config.get("chat_template")

    # -- config facts ----------------------------------------------------------------------
    def text_config(self) -> dict:
        c = self.config or {}
        return c.get("text_config") if isinstance(c.get("text_config"), dict) else c

    @property
    def has_weights(self) -> bool:
        return bool(self.shards)

    @property
    def tied(self) -> bool:
        """Whether lm_head is the embedding (no lm_head tensor stored, or the config ties them)."""
        if self.lm_head is None:
            return True
        c = self.config or {}
        tc = self.text_config()
        tie = c.get("tie_word_embeddings", tc.get("tie_word_embeddings"))
        return bool(tie)

    def eos_ids_for_generation(self) -> tuple[list[int], str]:
        """(stop ids generation uses, where they come from)."""
        if self.generation_config is not None and "eos_token_id" in self.generation_config:
            return as_id_list(self.generation_config.get("eos_token_id")), "generation_config.json"
        c = self.text_config()
        if "eos_token_id" in c or (self.config or {}).get("eos_token_id") is not None:
            return as_id_list(c.get("eos_token_id", (self.config or {}).get("eos_token_id"))), "config.json"
        return [], "none"

    # -- tensors ---------------------------------------------------------------------------
    @cached_property
    def tensor_index(self) -> dict[str, Path]:
        """tensor name -> shard file (from the index when there is one, else from the headers)."""
        idx = self.path / "model.safetensors.index.json"
        if idx.is_file():
            wm = (read_json(idx) or {}).get("weight_map") or {}
            return {k: self.path / v for k, v in wm.items()}
        out: dict[str, Path] = {}
        for shard in self.shards:
            for name in _header(shard):
                if name.startswith("__"):
                    continue
                out[name] = shard
        return out

    def _ref(self, name: str) -> TensorRef:
        file = self.tensor_index[name]
        meta = _header(file).get(name)
        if meta is None:
            raise DoctorInputError(f"{file}: the index names tensor {name!r} but the file does not hold it")
        return TensorRef(file, name, tuple(meta["shape"]), meta["dtype"])

    @cached_property
    def embedding(self) -> TensorRef | None:
        names = [n for n in self.tensor_index if n.endswith(EMBED_SUFFIXES) and "vision" not in n
                 and "position" not in n and "audio" not in n]
        if not names:
            return None
        return self._ref(min(names, key=len))

    @cached_property
    def lm_head(self) -> TensorRef | None:
        names = [n for n in self.tensor_index if n.endswith(HEAD_NAMES) and n.count(".") <= 3
                 and "vision" not in n]
        if not names:
            return None
        return self._ref(min(names, key=len))

    @property
    def embedding_rows(self) -> int | None:
        """Rows of the input embedding (the real bound on token ids), else config.vocab_size."""
        if self.embedding is not None:
            return self.embedding.rows
        v = self.text_config().get("vocab_size")
        return v if isinstance(v, int) else None

    def weights_bytes(self) -> int:
        return sum(s.stat().st_size for s in self.shards)


def _header(file: Path) -> dict:
    """The safetensors header of ``file`` (name -> {dtype, shape, data_offsets}); no tensor data read."""
    import struct

    try:
        st = file.stat()
    except OSError as e:
        raise DoctorInputError(f"{file}: cannot read: {e}") from None
    key = (file, st.st_mtime_ns, st.st_size)
    cache = _HEADERS.get(key)
    if cache is not None:
        return cache

    try:
        with open(file, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            if n > 100_000_000:
                raise ValueError("header too large")
            head = json.loads(fh.read(n))
    except (OSError, ValueError, struct.error) as e:
        raise DoctorInputError(f"{file}: not a readable safetensors file: {e}") from None
    head.pop("__metadata__", None)
    head["__header_bytes__"] = n
    _HEADERS[key] = head
    return head


def _header_size(file: Path) -> int:
    """The byte length of the JSON header of a safetensors file (tensor data starts at 8 + this)."""
    return _header(file)["__header_bytes__"]


_HEADERS: dict[tuple, dict] = {}
