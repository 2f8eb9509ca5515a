"""What an export starts from: the model folder (config + safetensors), the optional adapter
folder, the tokenizer folder (the adapter's when it carries one: the trainer saves the tokenizer
it trained with), and the chat format (``--template``, else the ``tmplc.yaml`` the trainer
recorded, else the tokenizer's chat_template imported by the converter -- refused if it cannot be)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tmplc.export.errors import ExportInputError, ExportRefused

SPEC_FILE = "tmplc.yaml"


@dataclass
class Sources:
    model: Path
    adapter: Path | None
    tokenizer_dir: Path
    config: dict
    spec_source: str


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportInputError(f"{path}: not found") from None
    except (OSError, ValueError) as exc:
        raise ExportInputError(f"{path}: cannot read JSON: {exc}") from exc


def locate(model: str | Path, adapter: str | Path | None) -> Sources:
    m = Path(model)
    if not m.is_dir():
        raise ExportInputError(f"{m}: not a model folder (an HF folder with config.json and safetensors)")
    cfg = _read_json(m / "config.json")
    a = Path(adapter) if adapter is not None else None
    if a is not None and not a.is_dir():
        raise ExportInputError(f"{a}: not an adapter folder")
    tok = a if a is not None and (a / "tokenizer.json").is_file() else m
    return Sources(m, a, tok, cfg, "")


def load_format(src: Sources, template: Any, tokenizer: Any):
    """The chat format to export with, and where it came from (a description for the report); its
    end-of-turn token, where it declares none, read off its assistant suffix (``with_end_of_turn``)."""
    from tmplc.formatter.tokenizer_info import with_end_of_turn

    fmt, source = _load_format(src, template, tokenizer)
    return with_end_of_turn(fmt, tokenizer), source


def _load_format(src: Sources, template: Any, tokenizer: Any):
    import tmplc
    from tmplc.ir import ChatFormat

    if isinstance(template, ChatFormat):
        return template, "given (ChatFormat)"
    if template is not None:
        return tmplc.load(template), f"--template {template}"
    for folder in [f for f in (src.adapter, src.model) if f is not None]:
        spec = folder / SPEC_FILE
        if spec.is_file():
            return tmplc.load_spec_file(spec), f"{spec} (recorded by the trainer)"
    jt = getattr(tokenizer, "chat_template", None)
    if not isinstance(jt, str) or not jt:
        raise ExportRefused(f"{src.tokenizer_dir}: no --template, no {SPEC_FILE} and no chat_template in the "
                            "tokenizer: tmplc cannot know the training format (pass --template)")
    from tmplc.doctor.template import import_chat_template

    # with its tool part where the converter recovers it exactly: the GGUF's template then renders
    # tools as the model's own template does (a text-only import would refuse them)
    fmt, refusal = import_chat_template(jt, bos=tokenizer.bos_token, eos=tokenizer.eos_token, name="imported",
                                        with_tools=True)
    if fmt is None:
        raise ExportRefused(f"{src.tokenizer_dir}: the tokenizer's chat_template cannot be imported exactly "
                            f"({refusal}); pass --template SPEC")
    return fmt, f"{src.tokenizer_dir}: the tokenizer's chat_template (imported)"
