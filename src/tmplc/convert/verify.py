"""``verify_deployed``: does what is deployed render like the format that was trained?

The deployed side is whatever a model ships with: an Ollama Modelfile, a GGUF file, a tokenizer
folder (``tokenizer_config.json`` / ``chat_template.jinja``), a lone ``.jinja``, or the folder (or
``manifest.json``) that ``tmplc compile --to all`` wrote.  Nothing is converted and nothing is
guessed: the deployed template is *rendered* by its own engine on the verification conversations
(:func:`tmplc.convert.common.verification_cases`: 1–6 exchanges, with and without a system
message, edge contents, seeded random ones) and compared byte for byte with the format:

* a Jinja template (HF, GGUF's ``tokenizer.chat_template``) in the HF-like sandbox, with the
  deployed BOS/EOS strings, against the reference renderer (``fmt.render``); the token strings
  themselves are compared too (a tokenizer whose BOS differs from the spec's is a difference);
* an Ollama TEMPLATE (with its ``SYSTEM``) in the Go harness, against the format's own Modelfile
  rendered by the same harness (Ollama's conventions: no BOS, merged same-role messages, no
  generation-prompt flag; a format that trims is compared as its Modelfile renders it, contents
  as sent); a Modelfile's ``PARAMETER stop`` lines are compared with the format's stops (a
  missing or extra stop is a difference);
* a manifest: every file's sha256 first (an edited file is a difference), then each deployable
  file in it as above, and ``format.json`` by IR equality.

Untrusted templates run under the sandbox and harness limits (a passed limit is a refusal).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from tmplc.errors import MessageError, TmplcError
from tmplc.ir import ChatFormat

#: the day both sides render on (a single-digit day and month: padded dates differ)
DAY = _dt.date(2027, 2, 7)


@dataclass
class Difference:
    """The first conversation on which the deployed side renders differently."""

    file: str
    label: str
    messages: list
    add_generation_prompt: bool
    expected: str
    deployed: str

    def describe(self) -> str:
        k = 0
        while k < min(len(self.expected), len(self.deployed)) and self.expected[k] == self.deployed[k]:
            k += 1
        lo = max(0, k - 30)
        return "\n".join([
            f"{self.file}: differs on a conversation ({self.label}"
            f"{', add_generation_prompt' if self.add_generation_prompt else ''}):",
            f"  messages: {json.dumps(self.messages, ensure_ascii=False)}",
            f"  expected: {_clip(self.expected)}",
            f"  deployed: {_clip(self.deployed)}",
            f"  first difference at character {k}: expected {self.expected[lo:k + 30]!r}, "
            f"deployed {self.deployed[lo:k + 30]!r}",
        ])


def _clip(s: str, n: int = 600) -> str:
    return repr(s if len(s) <= n else s[:n] + "...")


@dataclass
class Report:
    """What was checked (``checked``: one line per file), and the problems found."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _cases(fmt: ChatFormat, n_random: int):
    from tmplc.convert.common import verification_cases

    return verification_cases(system=fmt.structure.system is not None, n_random=n_random, seed=7)


def _expected(fmt: ChatFormat, case) -> str | None:
    try:
        return fmt.render(case.msgs, case.add_generation_prompt, date=DAY)
    except MessageError:
        return None  # a conversation the format refuses: nothing to compare


def check_jinja(template: str, fmt: ChatFormat, file: str, *, bos_token: str | None, eos_token: str | None,
                n_random: int = 40) -> Difference | str | None:
    """The first difference between a deployed HF/Jinja template and ``fmt``; a string for a
    token mismatch; None when they render alike."""
    from tmplc.convert.sandbox import render_batch

    for key, deployed in (("bos_token", bos_token), ("eos_token", eos_token)):
        spec_tok = getattr(fmt.meta, key)
        name = "{BOS}" if key == "bos_token" else "{EOS}"
        if fmt.structure.uses(name[1:-1]) and spec_tok is not None and deployed is not None and spec_tok != deployed:
            return (f"{file}: the deployed {key} is {deployed!r} but the spec's is {spec_tok!r}: {name} renders "
                    "differently")
    bos = fmt.meta.bos_token if fmt.meta.bos_token is not None else bos_token
    eos = fmt.meta.eos_token if fmt.meta.eos_token is not None else eos_token
    want_fmt = fmt.with_meta(bos_token=bos, eos_token=eos)
    cases = [(c, e) for c in _cases(fmt, n_random) if (e := _expected(want_fmt, c)) is not None]
    jobs = []
    for c, _ in cases:
        job = {"messages": c.msgs, "add_generation_prompt": c.add_generation_prompt, "__today__": DAY,
               "tools": None, "documents": None}
        if bos_token is not None:
            job["bos_token"] = bos_token
        if eos_token is not None:
            job["eos_token"] = eos_token
        jobs.append(job)
    results = render_batch(template, jobs)
    for (c, want), (kind, got) in zip(cases, results):
        if kind != "ok" or got != want:
            return Difference(file, c.label, c.msgs, c.add_generation_prompt, want,
                              got if kind == "ok" else f"<the template fails: {got}>")
    return None


def check_ollama(template: str, system: str | None, fmt: ChatFormat, file: str, *, n_random: int = 40
                 ) -> Difference | str | None:
    """The first difference between a deployed Ollama TEMPLATE (+ SYSTEM) and ``fmt``'s own
    Modelfile, both rendered by the Go harness; a string when ``fmt`` has no Modelfile."""
    from tmplc.convert.ollama import untrusted_limits
    from tmplc.engines.ollama import HarnessLimitError, render_ollama
    from tmplc.targets.ollama import modelfile_fields

    try:
        mine = modelfile_fields(fmt.to_ollama(allow_untrimmed=True))
    except TmplcError as e:
        return f"{file}: the format has no Ollama Modelfile to compare with: {e}"
    seen, convs = set(), []
    for c in _cases(fmt, n_random):
        key = json.dumps(c.msgs)
        if key not in seen and _expected(fmt, c) is not None:
            seen.add(key)
            convs.append(c)
    day = f"{DAY:%Y-%m-%d}"
    jobs = [{"template": mine["template"], "messages": c.msgs, "system": mine.get("system"), "date": day}
            for c in convs]
    jobs += [{"template": template, "messages": c.msgs, "system": system, "date": day} for c in convs]
    try:
        out = render_ollama(jobs, untrusted_limits())
    except HarnessLimitError as e:
        from tmplc.convert.errors import SandboxError

        raise SandboxError(f"sandbox ({e.limit} limit): {e.reason}") from None
    n = len(convs)
    for c, want, got in zip(convs, out[:n], out[n:]):
        if not isinstance(want, str):
            continue  # the format's own Modelfile refuses this conversation
        if got != want:
            return Difference(file, c.label, c.msgs, False, want,
                              got if isinstance(got, str) else f"<the template fails: {got.message}>")
    return None


def check_stops(modelfile: str, fmt: ChatFormat, file: str) -> str | None:
    """A deployed Modelfile's ``PARAMETER stop`` lines against the stops ``fmt``'s own Modelfile
    carries (its ``stop_strings``): a missing one means generation runs past the end of the turn,
    an extra one that it stops where training did not.  None when they agree (order is free);
    also None when ``fmt`` has no Modelfile (:func:`check_ollama` reports that)."""
    from tmplc.targets.ollama import modelfile_fields

    try:
        want = modelfile_fields(fmt.to_ollama(allow_untrimmed=True))["stop"]
    except TmplcError:
        return None
    got = modelfile_fields(modelfile)["stop"]
    missing = [s for s in dict.fromkeys(want) if s not in got]
    extra = [s for s in dict.fromkeys(got) if s not in want]
    if not missing and not extra:
        return None
    parts = []
    if missing:
        parts.append(f"missing PARAMETER stop {', '.join(map(repr, missing))} (generation would run past the end "
                     "of the turn)")
    if extra:
        parts.append(f"extra PARAMETER stop {', '.join(map(repr, extra))} (generation would stop where training "
                     "did not)")
    return f"{file}: the stop parameters differ from the spec's {want!r}: " + "; ".join(parts)


def _is_modelfile(p: Path) -> bool:
    return p.name == "Modelfile" or p.suffix.lower() == ".modelfile"


def _check_manifest(manifest_path: Path, fmt: ChatFormat, report: Report, n_random: int) -> None:
    from tmplc.fileio import InputError, read_text

    folder = manifest_path.parent
    try:
        manifest = json.loads(read_text(manifest_path, what="manifest"))
        targets = manifest["targets"]
        assert isinstance(targets, dict)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise InputError(manifest_path, "not a tmplc manifest (JSON with 'targets': target -> file -> sha256)") \
            from None
    for target, files in targets.items():
        for rel, digest in files.items():
            p = folder / rel
            if not p.is_file():
                report.problems.append(f"{p}: listed in the manifest but missing")
                continue
            actual = hashlib.sha256(p.read_bytes()).hexdigest()
            if actual != digest:
                report.problems.append(f"{p}: sha256 {actual[:16]}… differs from the manifest's {digest[:16]}… "
                                       "(edited after tmplc wrote it)")
    if not report.problems:
        report.checked.append(f"{manifest_path}: {sum(len(f) for f in targets.values())} files, sha256s checked")
    if manifest.get("format") not in (None, fmt.name):
        report.checked.append(f"{manifest_path}: written for the format {manifest['format']!r}")
    if report.problems:
        return
    tokens = {}
    if (folder / "tokenizer_config.json").is_file():  # the bundle's tokens, for llama.cpp's template too
        from tmplc.convert.sources import load_template_source

        side = load_template_source(folder / "tokenizer_config.json")
        tokens = {"bos_token": side.bos_token, "eos_token": side.eos_token}
    for rel in ("format.json", "chat_template.jinja", "llama.cpp/chat_template.jinja", "Modelfile"):
        p = folder / rel
        if p.is_file():
            _check_file(p, fmt, report, n_random, tokens)


def _check_file(p: Path, fmt: ChatFormat, report: Report, n_random: int, tokens: dict | None = None) -> None:
    if p.name == "format.json":
        from tmplc.convert.identify import equivalent
        from tmplc.fileio import read_text
        from tmplc.targets.json_ir import from_dict

        other = from_dict(json.loads(read_text(p, what="format file")))
        if equivalent(other, fmt):
            report.checked.append(f"{p}: the same layout (IR equality)")
        else:
            report.problems.append(f"{p}: a different layout than the spec (IR): {other.to_spec()!r}")
        return
    from tmplc.convert.sources import load_template_source

    from dataclasses import replace

    src = load_template_source(p)
    if src.kind == "jinja" and tokens:
        src = replace(src, **{k: v for k, v in tokens.items() if getattr(src, k) is None})
    _check_source(src, str(p), fmt, report, n_random)


def _check_source(src, file: str, fmt: ChatFormat, report: Report, n_random: int) -> None:
    if src.kind == "ollama":
        problem = check_ollama(src.template, src.system, fmt, file, n_random=n_random)
        engine = "Go text/template, Ollama's conventions"
        if src.path is not None and _is_modelfile(Path(src.path)):
            from tmplc.fileio import read_text
            from tmplc.targets.ollama import modelfile_fields

            text = read_text(Path(src.path), what="Modelfile")
            stops = check_stops(text, fmt, file)
            if stops is not None:
                report.problems.append(stops)
            elif problem is None:
                engine += f"; PARAMETER stop {modelfile_fields(text)['stop']!r} as the spec's"
    else:
        if not src.template:
            raise TmplcError(f"{file}: no chat template in it")
        problem = check_jinja(src.template, fmt, file, bos_token=src.bos_token, eos_token=src.eos_token,
                              n_random=n_random)
        engine = "HF Jinja sandbox"
    if problem is None:
        report.checked.append(f"{file}: renders identically ({engine})")
    else:
        report.problems.append(problem.describe() if isinstance(problem, Difference) else problem)


def verify_deployed(path: str | Path, fmt: ChatFormat, *, n_random: int = 40) -> Report:
    """Check a deployed Modelfile, GGUF, tokenizer folder, ``.jinja`` or tmplc manifest against
    ``fmt`` (see the module docstring).  ``Report.ok`` when everything renders identically."""
    from tmplc.convert.sources import TemplateSourceError, load_template_source

    p = Path(path)
    report = Report()
    if not p.exists():
        raise TemplateSourceError(f"{p}: no such file or directory")
    manifest = p if p.name == "manifest.json" else p / "manifest.json" if p.is_dir() else None
    if manifest is not None and manifest.is_file():
        _check_manifest(manifest, fmt, report, n_random)
        return report
    _check_source(load_template_source(p), str(p), fmt, report, n_random)
    return report


def identify_by_rendering(src) -> str | None:
    """The registry entry whose own Ollama Modelfile renders like the Ollama TEMPLATE ``src``
    (tmplc's Modelfiles cannot trim or carry BOS, so their conversion is not IR-equal to the entry
    they came from); None when none does.  The fixed conversations pick candidates, 40 random
    ones confirm."""
    from tmplc.registry import registry

    if src.kind != "ollama":
        return None
    for name in registry:
        try:
            entry = registry[name]
        except Exception:  # noqa: BLE001 - a broken entry is not a match
            continue
        if check_ollama(src.template, src.system, entry, "", n_random=0) is None and \
                check_ollama(src.template, src.system, entry, "", n_random=40) is None:
            return name
    return None


__all__ = ["DAY", "identify_by_rendering", "Difference", "Report", "check_jinja", "check_ollama", "check_stops",
           "verify_deployed"]
