"""GGUF export with export-time validation (``tmplc export``, ``tmplc gguf``).

    tmplc.export(model, template, out, outtypes=("F16",), adapter=None, force=False) -> ExportReport

Modules: :mod:`.safetensors_reader` (lazy weights), :mod:`.architectures` (Llama/Mistral/Qwen2/
Qwen3 plans), :mod:`.vocab` + :mod:`.pretokenizer` (tokenizer -> GGUF vocabulary),
:mod:`.metadata` (chat keys), :mod:`.quantize`, :mod:`.lora` (adapter merge), :mod:`.writer`
(one pass), :mod:`.validate` + :mod:`.doctor_check` (checks), :mod:`.report`,
:mod:`.gguf_edit` (inspect / set-template), :mod:`.exporter` (the whole export).
Importing this package imports neither torch nor transformers.
"""

from tmplc.export.errors import ExportInputError, ExportRefused, ValidationFailed
from tmplc.export.report import Check, ExportReport


def export(*args, **kwargs) -> ExportReport:
    from tmplc.export.exporter import export as _export

    return _export(*args, **kwargs)


export.__doc__ = "See :func:`tmplc.export.exporter.export`."

__all__ = ["Check", "ExportInputError", "ExportRefused", "ExportReport", "ValidationFailed", "export"]


class _CallableModule(__import__("types").ModuleType):
    """``tmplc.export`` is both this package and the function: importing the package sets the
    attribute ``tmplc.export`` to the module, so the module itself is callable as :func:`export`."""

    def __call__(self, *args, **kwargs) -> ExportReport:
        return export(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
