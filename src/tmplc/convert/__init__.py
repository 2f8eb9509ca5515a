"""Import chat templates users already have (HF Jinja, Ollama TEMPLATE) into the IR — exactly,
or refused with a reason.  Nothing is guessed: a template is probed with sentinel conversations,
its structure recovered with the spec language's own rules, and the result verified byte for
byte against the original on many conversations.

    from_jinja(template, *, bos_token=None, eos_token=None, **vars) -> ChatFormat
    convert_jinja(template, ...) -> JinjaConversion   (+ the tool part: .tools "exact" / "refused"
                                                       with .tools_reason / "none"; docs/tools.md)
    from_ollama(template, system=None) -> ChatFormat
    load_template_source(path) -> TemplateSource   (tokenizer_config.json, chat_template.jinja,
                                                     a model folder, a GGUF file, a Modelfile)
    identify(fmt) -> registry entry name or None   (by IR equality)
    ConversionRefused (.reason, .category); SandboxError (a subclass: sandbox limits)
"""

from tmplc.convert.errors import ConversionRefused, SandboxError
from tmplc.convert.identify import equivalent, identify
from tmplc.convert.jinja import JinjaConversion, convert_jinja, from_jinja
from tmplc.convert.ollama import from_ollama
from tmplc.convert.sources import TemplateSource, TemplateSourceError, load_template_source

__all__ = ["ConversionRefused", "JinjaConversion", "SandboxError", "TemplateSource", "TemplateSourceError",
           "convert_jinja", "equivalent", "from_jinja", "from_ollama", "identify", "load_template_source"]
