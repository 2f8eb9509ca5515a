"""``untrained-tokens``: embedding rows (and lm_head rows when untied) that training never
touched (indicators in :mod:`tmplc.doctor.weights`), each with ``used_by``: the template, the
data (row indices) or nothing.  An untrained token the template or the data uses is an error:
the base-model-with-instruct-template case (Llama-3 base with the Llama-3 instruct format: its
``<|start_header_id|>`` / ``<|eot_id|>`` rows are zero, so every row of training data feeds zero
vectors and the loss on ``<|eot_id|>`` starts from a zero lm_head row)."""

from __future__ import annotations

from tmplc.doctor.findings import Finding


def template_ids(fmt, facts) -> set[int]:
    """Ids of a probe render of the format (with and without the generation prompt)."""
    if fmt is None:
        return set()
    from tmplc.doctor.template import render_probe

    ids: set[int] = set()
    for gen in (False, True):
        try:
            ids.update(facts.ids(render_probe(fmt, facts, gen)))
        except Exception:  # noqa: BLE001 - a format that cannot render the probe: ids from its strings
            pass
    return ids


def untrained_finding(scans: dict, facts, fmt, tmpl_ids: set[int], data_used: dict | None,
                      has_data: bool) -> Finding | None:
    flagged: dict[int, dict] = {}
    for which, scan in scans.items():
        for i, why in scan.flags.items():
            flagged.setdefault(i, {})[which] = why
    if not flagged:
        return None
    entries = []
    used_any = []
    for i in sorted(flagged):
        used = []
        if i in tmpl_ids:
            used.append("template")
        rows = (data_used or {}).get(i)
        if rows:
            used.append("data")
        e = {"id": i, "token": facts.text(i), "matrices": flagged[i],
             "used_by": used or ["none"]}
        if rows:
            e["data_rows"] = rows[:50]
            e["data_row_count"] = len(rows)
        entries.append(e)
        if used:
            used_any.append(e)
    n = len(entries)
    mats = sorted({m for e in entries for m in e["matrices"]})
    if used_any:
        shown = "; ".join(
            f"id {e['id']} {e['token']!r} ({', '.join(f'{m} {w}' for m, w in e['matrices'].items())}; used by "
            + ", ".join(u if u != "data" else f"data rows {e['data_rows'][:5]}"
                        + (f" +{e['data_row_count'] - 5}" if e['data_row_count'] > 5 else "") for u in e["used_by"])
            + ")" for e in used_any[:12])
        msg = (f"{len(used_any)} untrained token(s) are used by the "
               f"{'template and data' if any('data' in e['used_by'] for e in used_any) and any('template' in e['used_by'] for e in used_any) else ('data' if any('data' in e['used_by'] for e in used_any) else 'template')}: "
               f"{shown}. This is a base model with an instruct/chat template: these rows were never trained "
               f"(all ~0 or identical), so the model starts from zero vectors for the format's tokens; with frozen "
               f"embeddings (typical LoRA) they never learn, and zero rows can give NaN gradients / garbage output. "
               f"{n} untrained row(s) in all ({', '.join(mats)})")
        sev = "error"
    else:
        msg = (f"{n} untrained token row(s) ({', '.join(mats)}; e.g. "
               + ", ".join(f"id {e['id']} {e['token']!r}" for e in entries[:6])
               + f"), used by neither the template{' nor the data' if has_data else ''}: harmless unless they "
               "start being used")
        sev = "info"
    return Finding(
        "untrained-tokens", sev, msg,
        "tmplc fix sets untrained rows to the mean of the trained rows (embedding and lm_head separately, in "
        "float64); also train embed_tokens and lm_head (LoRA: modules_to_save) or start from the instruct model",
        {"ids": [e["id"] for e in entries], "tokens": entries, "used": [e["id"] for e in used_any]})
