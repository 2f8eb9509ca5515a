"""Where templates come from: tokenizer_config.json, chat_template.jinja, a model folder, a GGUF
file, an Ollama Modelfile.

Precedence in a model folder follows transformers and gguf-py's SpecialVocab:
``tokenizer_config.json``'s ``chat_template`` wins over ``chat_template.jinja`` (a stale one
can shadow the newer file, so both are read and a difference is reported in ``notes``), then
``chat_template.json``.  A named-list ``chat_template`` (``[{"name": "default", "template": ...},
{"name": "tool_use", ...}]``) gives the ``default`` entry (or the only one); the others are kept
in ``named``.  BOS/EOS token strings come from ``tokenizer_config.json`` (strings or AddedToken
dicts) or, for GGUF, from the vocabulary at ``tokenizer.ggml.{bos,eos}_token_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmplc.convert.errors import ConversionRefused
from tmplc.errors import TmplcError

#: the largest template source file read (a chat template is a few KB; GGUF files are read lazily)
MAX_SOURCE_BYTES = 16 << 20


class TemplateSourceError(TmplcError, ValueError):
    """The path holds no chat template tmplc can read (bad input: the CLI exits 2)."""

    exit_code = 2


@dataclass(frozen=True)
class TemplateSource:
    """A template and what the converter needs besides it."""

    template: str
    kind: str = "jinja"                 # "jinja" (HF) or "ollama" (Go text/template)
    bos_token: str | None = None
    eos_token: str | None = None
    system: str | None = None           # Ollama Modelfile SYSTEM
    path: str | None = None
    name: str = "imported"
    named: dict[str, str] = field(default_factory=dict)  # other named templates (tool_use, rag ...)
    notes: str = ""

    def convert(self, **kw: Any):
        """Convert with :func:`from_jinja` / :func:`from_ollama` (ConversionRefused on refusal)."""
        if self.kind == "ollama":
            from tmplc.convert.ollama import from_ollama

            fmt = from_ollama(self.template, system=self.system, bos_token=kw.pop("bos_token", None), **kw)
        else:
            from tmplc.convert.jinja import from_jinja

            fmt = from_jinja(self.template, bos_token=self.bos_token, eos_token=self.eos_token,
                             format_name=self.name, **kw)
        return self._named(fmt)

    def _named(self, fmt):
        return fmt.with_meta(name=self.name, source=self.path,
                             notes=fmt.meta.notes + (f"; {self.notes}" if self.notes else ""))

    def convert_with_tools(self, **kw: Any):
        """The text format and, for an HF template that uses tools, its tool part
        (:func:`~tmplc.convert.jinja.convert_jinja`): a
        :class:`~tmplc.convert.jinja.JinjaConversion` whose ``tools`` is ``"exact"``, ``"refused"``
        (``tools_reason``; ``format`` is the text format) or ``"none"``.  The text part's refusal
        raises ConversionRefused as :meth:`convert`.  An Ollama template's tool part (``.Tools``,
        ``.ToolCalls``) is not imported: it is reported as refused with the reason."""
        from dataclasses import replace

        from tmplc.convert.jinja import JinjaConversion, convert_jinja

        if self.kind == "ollama":
            fmt = self.convert(**kw)
            if any(w in self.template for w in (".Tools", ".ToolCalls")):
                return JinjaConversion(fmt, fmt, "refused", OLLAMA_TOOLS_REFUSED)
            return JinjaConversion(fmt, fmt, "none")
        conv = convert_jinja(self.template, bos_token=self.bos_token, eos_token=self.eos_token,
                             format_name=self.name, **kw)
        return replace(conv, format=self._named(conv.format), text_format=self._named(conv.text_format))


#: why an Ollama template's tool part is not imported
OLLAMA_TOOLS_REFUSED = (
    "an Ollama template's tool part (.Tools, .ToolCalls) is not imported: Ollama writes tool lists and "
    "call arguments with Go's JSON encoder (its own key order and spacing), which a format's JSON style "
    "cannot state; convert the model's HF chat template (tokenizer_config.json) for the tool part")


def _token(v: Any) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("content"), str):
        return v["content"]
    return None


def _pick(ct: Any, where: str) -> tuple[str, dict[str, str]]:
    if isinstance(ct, str):
        return ct, {}
    if isinstance(ct, list):
        named = {}
        for item in ct:
            if not (isinstance(item, dict) and isinstance(item.get("name"), str)
                    and isinstance(item.get("template"), str)):
                raise TemplateSourceError(f"{where}: chat_template is a list whose items are not "
                                          "{'name': ..., 'template': ...}")
            named[item["name"]] = item["template"]
        if "default" in named:
            return named.pop("default"), named
        if len(named) == 1:
            return named.popitem()[1], {}
        raise TemplateSourceError(f"{where}: chat_template lists {sorted(named)} but no 'default'")
    raise TemplateSourceError(f"{where}: chat_template is neither a string nor a named list")


def _text(path: Path, what: str) -> str:
    """The file's text under tmplc's decoding policy (``tmplc.fileio``; InputError, exit 2)."""
    from tmplc.fileio import read_text

    return read_text(path, what=what, max_bytes=MAX_SOURCE_BYTES)


def _json(path: Path) -> Any:
    """A JSON file, bounded: nesting, huge numbers and syntax errors are TemplateSourceError."""
    from tmplc.data.readers import parse_json_value

    try:
        return parse_json_value(_text(path, "JSON file"), str(path))
    except ValueError as e:
        raise TemplateSourceError(f"cannot read this JSON file: {e}") from None


def _from_tokenizer_config(path: Path) -> TemplateSource | None:
    data = _json(path)
    if not isinstance(data, dict):
        raise TemplateSourceError(f"{path}: not a JSON object")
    bos, eos = _token(data.get("bos_token")), _token(data.get("eos_token"))
    name = path.parent.name or "imported"
    if data.get("chat_template") is None:
        return TemplateSource("", bos_token=bos, eos_token=eos, path=str(path), name=name)
    tmpl, named = _pick(data["chat_template"], str(path))
    return TemplateSource(tmpl, bos_token=bos, eos_token=eos, path=str(path), name=name, named=named)


def _from_gguf(path: Path) -> TemplateSource:
    from tmplc.gguf_container import GGUFError, read_gguf

    try:
        gg = read_gguf(path)
    except GGUFError as e:
        raise TemplateSourceError(f"{path}: not a readable GGUF file: {e}") from None
    value = gg.get
    tmpl = value("tokenizer.chat_template")
    named = {key[len("tokenizer.chat_template."):]: value(key)
             for key in gg.kvs if key.startswith("tokenizer.chat_template.")}
    if not isinstance(tmpl, str):
        raise TemplateSourceError(f"{path}: the GGUF file has no tokenizer.chat_template")
    try:
        tmpl.encode("utf-8")
    except UnicodeEncodeError as e:
        raise TemplateSourceError(f"{path}: tokenizer.chat_template is not valid UTF-8 "
                                  f"(character {e.start}); rewrite it with `tmplc gguf set-template`") from None
    tokens = value("tokenizer.ggml.tokens") or []
    bos = eos = None
    for key, slot in (("tokenizer.ggml.bos_token_id", "bos"), ("tokenizer.ggml.eos_token_id", "eos")):
        tid = value(key)
        if isinstance(tid, int) and 0 <= tid < len(tokens):
            if slot == "bos":
                bos = tokens[tid]
            else:
                eos = tokens[tid]
    name = value("general.name")
    return TemplateSource(tmpl, bos_token=bos, eos_token=eos, path=str(path),
                          name=name if isinstance(name, str) and name else path.stem, named=named)


def parse_modelfile(text: str) -> dict[str, str]:
    """TEMPLATE and SYSTEM of an Ollama Modelfile (triple-quoted or single-line values); a fallback
    for :func:`tmplc.targets.ollama.modelfile_fields`."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    k = 0
    while k < len(lines):
        line = lines[k]
        stripped = line.strip()
        parts = stripped.split(None, 1)
        if not parts or parts[0].startswith("#"):
            k += 1
            continue
        cmd = parts[0].upper()
        rest = parts[1] if len(parts) > 1 else ""
        if cmd in ("TEMPLATE", "SYSTEM"):
            if rest.startswith('"""'):
                body = rest[3:]
                if '"""' in body:
                    out[cmd] = body[:body.index('"""')]
                else:
                    buf = [body]
                    k += 1
                    while k < len(lines) and '"""' not in lines[k]:
                        buf.append(lines[k])
                        k += 1
                    if k < len(lines):
                        buf.append(lines[k][:lines[k].index('"""')])
                    out[cmd] = "\n".join(buf)
            elif rest.startswith('"') and rest.endswith('"') and len(rest) >= 2:
                out[cmd] = rest[1:-1]
            else:
                out[cmd] = rest
        k += 1
    return out


def load_template_source(path: str | Path) -> TemplateSource:
    """Read a chat template and its tokens from a tokenizer_config.json, a chat_template.jinja
    (or any .jinja file), a model folder, a GGUF file, or an Ollama Modelfile."""
    p = Path(path)
    if not p.exists():
        raise TemplateSourceError(f"{p}: no such file or directory")
    if p.is_dir():
        cfg = p / "tokenizer_config.json"
        jinja = p / "chat_template.jinja"
        src = _from_tokenizer_config(cfg) if cfg.is_file() else None
        if src is not None and src.template:
            if jinja.is_file() and _text(jinja, "template file") != src.template:
                from dataclasses import replace

                src = replace(src, notes="tokenizer_config.json's chat_template (which transformers and "
                              "gguf use) differs from chat_template.jinja; the former was converted")
            return src
        if jinja.is_file():
            return TemplateSource(_text(jinja, "template file"), bos_token=src.bos_token if src else None,
                                  eos_token=src.eos_token if src else None, path=str(jinja), name=p.name)
        ctj = p / "chat_template.json"
        if ctj.is_file():
            data = _json(ctj)
            tmpl, named = _pick(data.get("chat_template") if isinstance(data, dict) else data, str(ctj))
            return TemplateSource(tmpl, bos_token=src.bos_token if src else None,
                                  eos_token=src.eos_token if src else None, path=str(ctj), name=p.name,
                                  named=named)
        for gg in sorted(p.glob("*.gguf")):
            return _from_gguf(gg)
        mf = p / "Modelfile"
        if mf.is_file():
            return load_template_source(mf)
        raise TemplateSourceError(f"{p}: no tokenizer_config.json with a chat_template, chat_template.jinja, "
                                  "chat_template.json, *.gguf or Modelfile in this folder")
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise TemplateSourceError(f"{p}: cannot read: {e.strerror or e}") from None
    if magic == b"GGUF":
        return _from_gguf(p)
    if p.suffix == ".json":
        src = _from_tokenizer_config(p)
        if not src.template:
            raise TemplateSourceError(f"{p}: no chat_template in this JSON file")
        return src
    text = _text(p, "template file")
    if p.name == "Modelfile" or p.suffix.lower() == ".modelfile":
        try:  # Ollama's own Modelfile parser, ported by the Ollama target
            from tmplc.targets.ollama import modelfile_fields

            fields = modelfile_fields(text)
            mf = {k.upper(): v for k, v in (("template", fields.get("template")),
                                            ("system", fields.get("system"))) if v is not None}
        except ImportError:  # pragma: no cover
            mf = parse_modelfile(text)
        if "TEMPLATE" not in mf:
            raise TemplateSourceError(f"{p}: the Modelfile has no TEMPLATE")
        return TemplateSource(mf["TEMPLATE"], kind="ollama", system=mf.get("SYSTEM"), path=str(p),
                              name=p.parent.name or "imported")
    if p.suffix in (".gotmpl", ".tmpl"):
        return TemplateSource(text, kind="ollama", path=str(p), name=p.stem)
    # chat_template.jinja or any other text file: an HF Jinja template; tokens from a sibling config
    bos = eos = None
    cfg = p.parent / "tokenizer_config.json"
    if cfg.is_file():
        try:
            side = _from_tokenizer_config(cfg)
            bos, eos = side.bos_token, side.eos_token
        except (TemplateSourceError, ConversionRefused):
            pass
    name = p.stem if p.stem != "chat_template" else (p.parent.name or "imported")
    return TemplateSource(text, bos_token=bos, eos_token=eos, path=str(p), name=name)
