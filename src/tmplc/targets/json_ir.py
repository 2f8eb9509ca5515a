"""IR <-> JSON-serialisable dict (``tmplc compile --to json``), generated from the dataclass fields.

Like sqlglot's ``serde`` over its ``arg_types``, nothing here names a field: :func:`dump` writes
every field of every IR dataclass, :func:`load` reads them back by the fields' type hints, so a new
field needs no serialisation code and ``from_dict(to_dict(f)) == f`` for every format.

Shape: the metadata fields at the top level (``name``, ``description``, ``aliases``, ``bos_token``,
``eos_token``, ``eot_token``, ``stop``, ``notes``, ``source``) and ``"structure"``; a dataclass is
an object of its fields; a fragment is a list whose items are a string (text), ``{"token": "BOS"}``
or ``{"date": "%d %b %Y"}``.  Missing fields take their defaults (older files); an unknown field
is an error (nothing is dropped silently).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import lru_cache
from typing import Any, Union, get_args, get_origin

from tmplc import ir
from tmplc.ir import ChatFormat, DateToken, Fragment, Metadata, SpecialToken, Structure, Text, fragment


def dump(value: Any) -> Any:
    """``value`` (an IR dataclass, fragment, tuple or scalar) as JSON-serialisable data."""
    if isinstance(value, Text):
        return value.value
    if isinstance(value, SpecialToken):
        return {"token": value.name}
    if isinstance(value, DateToken):
        return {"date": value.format}
    if dataclasses.is_dataclass(value):
        return {f.name: dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [dump(v) for v in value]
    return value


@lru_cache(maxsize=None)
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(ir))


def _piece(item: Any) -> Any:
    if isinstance(item, str):
        return Text(item)
    if isinstance(item, dict) and set(item) == {"token"}:
        return SpecialToken(item["token"])
    if isinstance(item, dict) and set(item) == {"date"}:
        return DateToken(item["date"])
    raise ValueError(f"not a fragment piece: {item!r} (a string, {{'token': ...}} or {{'date': ...}})")


def load(hint: Any, data: Any) -> Any:
    """``data`` (from :func:`dump`) as a value of type ``hint``."""
    if hint == Fragment:
        return fragment(_piece(x) for x in data)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if data is None:
            return None
        options = [a for a in get_args(hint) if a is not type(None)]
        return load(options[0], data) if len(options) == 1 else data
    if origin is tuple:
        return tuple(load(get_args(hint)[0], v) for v in data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise ValueError(f"{hint.__name__}: expected an object, got {data!r}")
        hints = _hints(hint)
        names = {f.name for f in dataclasses.fields(hint)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{hint.__name__}: unknown field(s) {', '.join(unknown)}")
        return hint(**{k: load(hints[k], v) for k, v in data.items()})
    return data


def to_dict(fmt: ChatFormat) -> dict[str, Any]:
    """The format as JSON-serialisable data: every metadata field, and ``structure``."""
    return {**dump(fmt.meta), "structure": dump(fmt.structure)}


def from_dict(d: dict[str, Any]) -> ChatFormat:
    """The format :func:`to_dict` wrote (``from_dict(to_dict(f)) == f``)."""
    meta = {k: v for k, v in d.items() if k != "structure"}
    return ChatFormat(load(Structure, d["structure"]), load(Metadata, meta))
