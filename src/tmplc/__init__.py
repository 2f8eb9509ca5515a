"""tmplc: one two-repetition description of a chat format, compiled to every target.

Public API::

    tmplc.load(name_or_path_or_spec_text) -> ChatFormat
    tmplc.parse_spec(text, name=..., bos_token=..., eos_token=...) -> ChatFormat
    ChatFormat.render(messages, add_generation_prompt=False, continue_final_message=False) -> str
    ChatFormat.segments(...), .to_jinja(), .to_spec(), .to_yaml(), .to_dict()
    ChatFormat.name, .bos_token, .eos_token
    tmplc.registry  (mapping name -> ChatFormat; iterate for names)
    tmplc.SpecError, tmplc.MessageError, tmplc.RegistryError
    tmplc.from_jinja(template, bos_token=..., eos_token=...) -> ChatFormat   (or ConversionRefused)
    tmplc.from_ollama(template, system=None) -> ChatFormat
    tmplc.load_template_source(path), tmplc.identify(fmt), tmplc.ConversionRefused
    tmplc.export(model, template, out, outtypes=..., adapter=None) -> ExportReport   (GGUF + Modelfile)
    tmplc.check(path, template=None, data=None, ...) -> Report, tmplc.fix(path, out, ...) -> Report
    tmplc.train(model=..., data=..., template=..., out=..., **options) -> TrainResult  (LoRA SFT)

Importing tmplc never imports torch or transformers.
"""

from tmplc.api import load
from tmplc.errors import MessageError, RegistryError, SpecError, TmplcError
from tmplc import lint
from tmplc.ir import ChatFormat, DateToken, Metadata, SpecialToken, Structure, SystemBlock, Text, Turn
from tmplc.registry import registry
from tmplc.render import Segment
from tmplc.spec.files import load_spec_file, parse_spec

__version__ = "0.1.0"

_CONVERT = ("from_jinja", "from_ollama", "load_template_source", "identify", "ConversionRefused")
_DOCTOR = ("check", "fix")


def __getattr__(name: str):  # lazy: the converter, the exporter and the trainer are not needed to compile
    if name in ("export", "ExportReport"):
        import importlib

        module = importlib.import_module("tmplc.export")  # also sets tmplc.export to the (callable) module
        return module if name == "export" else getattr(module, name)
    if name == "train":  # tmplc.train(...) runs a training job; tmplc.train.* are its modules
        import importlib

        return importlib.import_module("tmplc.train")
    if name in _CONVERT:
        import tmplc.convert as _convert

        return getattr(_convert, name)
    if name in _DOCTOR:  # the pitfall doctor (torch/transformers only when a check runs)
        import tmplc.doctor as _doctor

        return getattr(_doctor, name)
    raise AttributeError(f"module 'tmplc' has no attribute {name!r}")


__all__ = [
    "ChatFormat", "DateToken", "Metadata", "MessageError", "RegistryError", "Segment", "SpecError",
    "SpecialToken", "Structure", "SystemBlock", "Text", "TmplcError", "Turn",
    "lint", "load", "load_spec_file", "parse_spec", "registry", "export", "ExportReport", *_CONVERT, *_DOCTOR,
]
