"""tmplc: one two-repetition description of a chat format, compiled to every target.

Public API::

    tmplc.load(name_or_path_or_spec_text) -> ChatFormat
    tmplc.parse_spec(text, name=..., bos_token=..., eos_token=...) -> ChatFormat
    ChatFormat.render(messages, add_generation_prompt=False, continue_final_message=False) -> str
    ChatFormat.segments(...), .to_jinja(), .to_spec(), .to_yaml(), .to_dict()
    ChatFormat.name, .bos_token, .eos_token
    tmplc.registry  (mapping name -> ChatFormat; iterate for names)
    tmplc.SpecError, tmplc.MessageError, tmplc.RegistryError

Importing tmplc never imports torch or transformers.
"""

from tmplc.api import load
from tmplc.errors import MessageError, RegistryError, SpecError, TmplcError
from tmplc.ir import ChatFormat, Metadata, SpecialToken, Structure, SystemBlock, Text, Turn
from tmplc.registry import registry
from tmplc.render import Segment
from tmplc.spec.files import load_spec_file, parse_spec

__version__ = "0.1.0"

__all__ = [
    "ChatFormat", "Metadata", "MessageError", "RegistryError", "Segment", "SpecError",
    "SpecialToken", "Structure", "SystemBlock", "Text", "TmplcError", "Turn",
    "load", "load_spec_file", "parse_spec", "registry",
]
