"""Check 4: the doctor's errors for the model + tokenizer + format being exported.

With :mod:`tmplc.doctor` present, its ``check`` runs and every error-severity finding fails the
check.  Without it, a built-in subset runs (said in the report): the end-of-turn is one token,
pad is not the end-of-turn token, and the special tokens the template renders have trained
embedding rows (an all-zero row, or one of norm under 1e-3 x the median, is untrained).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tmplc.export.report import Check

if TYPE_CHECKING:  # pragma: no cover
    from tmplc.export.safetensors_reader import Checkpoint
    from tmplc.ir import ChatFormat


def _template_token_ids(fmt: "ChatFormat", tokenizer: Any) -> dict[str, int]:
    from tmplc.export.conversations import FIXED

    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    out: dict[str, int] = {}
    for c in FIXED:
        for agp in (False, True):
            if agp and c[-1]["role"] == "assistant":
                continue
            try:
                text = fmt.render(list(c), add_generation_prompt=agp)
            except Exception:
                continue
            for i in tokenizer(text, add_special_tokens=False)["input_ids"]:
                if i in special:
                    out[tokenizer.convert_ids_to_tokens(i)] = i
    return out


def builtin_doctor(fmt: "ChatFormat", tokenizer: Any, ck: "Checkpoint", eot_id: int | None) -> list[dict]:
    errors: list[dict] = []
    eot = fmt.eot_token or tokenizer.eos_token
    if eot and tokenizer.encode(eot, add_special_tokens=False) != [eot_id]:
        errors.append({"code": "eot-not-single", "message": f"end-of-turn {eot!r} is not a single token"})
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id == eot_id:
        errors.append({"code": "pad-is-eos", "message": f"the tokenizer's pad token {tokenizer.pad_token!r} is the "
                       "end-of-turn token: training masked it as padding, so the model may never stop"})
    used = _template_token_ids(fmt, tokenizer)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        if name not in ck:
            continue
        rows = ck.raw(name)
        sample = np.linspace(0, rows.shape[0] - 1, num=min(256, rows.shape[0])).astype(int)
        ref = np.median(np.linalg.norm(_f32(rows[sample]), axis=1))
        for tok, i in used.items():
            norm = float(np.linalg.norm(_f32(rows[i:i + 1])))
            if norm == 0.0 or norm < 1e-3 * ref:
                errors.append({"code": "untrained-token", "message": f"the template uses {tok!r} (id {i}) but its "
                               f"{name} row is untrained (norm {norm:.3g}, median row norm {ref:.3g})"})
    return errors


def _f32(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint16:  # bf16 bit patterns
        return (a.astype(np.uint32) << 16).view(np.float32)
    return a.astype(np.float32)


def check_doctor(fmt: "ChatFormat", tokenizer: Any, ck: "Checkpoint", eot_id: int | None, model_dir: Any) -> Check:
    """``model_dir``: the model folder (its embedding rows); ``tokenizer``: the one exported with."""
    try:
        from tmplc.doctor import check as doctor_check
    except ImportError:
        errors = builtin_doctor(fmt, tokenizer, ck, eot_id)
        how = "built-in subset (tmplc.doctor is not installed)"
    else:
        report = doctor_check(str(model_dir), template=fmt, tokenizer=tokenizer)
        errors = [{"code": f.code, "message": f.message} for f in report.errors]
        how = "tmplc.doctor"
    if errors:
        return Check("doctor", False, f"{how}: " + "; ".join(f"{e['code']}: {e['message']}" for e in errors),
                     {"errors": errors})
    return Check("doctor", True, f"{how}: no errors", {"errors": []})
