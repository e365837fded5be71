"""Loading YAML manifests fast: libyaml composes the nodes (C), and plain scalars are
resolved here with the same YAML 1.1 rules PyYAML's SafeLoader applies, skipping its
per-scalar Python resolver and constructor. Anything unusual (tags, merge keys, timestamps,
sexagesimal or octal-looking numbers, ...) goes to SafeLoader, so results are the same;
tests compare the two."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml

_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?$")
# What PyYAML's SafeLoader resolves to int, float or timestamp (YAML 1.1). A plain scalar
# matching these but not the simple forms above is left to SafeLoader.
_YAML11 = re.compile(
    r"""^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+
    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+
    |[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)
    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?.*|=|<<)$""",
    re.X,
)
_WORDS = {
    "yes": True,
    "Yes": True,
    "YES": True,
    "no": False,
    "No": False,
    "NO": False,
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
    "on": True,
    "On": True,
    "ON": True,
    "off": False,
    "Off": False,
    "OFF": False,
    "null": None,
    "Null": None,
    "NULL": None,
    "~": None,
    "": None,
}
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"


class _Unusual(Exception):
    pass


def _plain(value: str) -> Any:
    if value in _WORDS:
        return _WORDS[value]
    if not _YAML11.match(value):
        return value
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        return float(value)
    raise _Unusual


def _construct(node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        if node.tag != _STR:
            raise _Unusual
        if not node.style:  # plain (libyaml says "", PyYAML None)
            return _plain(node.value)
        return node.value
    if isinstance(node, yaml.MappingNode):
        if node.tag != _MAP:
            raise _Unusual
        out: dict[Any, Any] = {}
        for k, v in node.value:
            key = _construct(k)
            if key == "<<" and not getattr(k, "style", None):
                raise _Unusual  # merge keys
            out[key] = _construct(v)
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _SEQ:
            raise _Unusual
        return [_construct(x) for x in node.value]
    raise _Unusual


def load_all(text: str) -> Iterator[Any]:
    """Like yaml.safe_load_all(text), faster on the manifests fyke reads."""
    base = getattr(yaml, "CBaseLoader", None)
    if base is None:
        yield from yaml.safe_load_all(text)
        return
    loader = base(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            try:
                docs.append(_construct(node) if node is not None else None)
            except _Unusual:
                docs = []
                break
        else:
            yield from docs
            return
    finally:
        loader.dispose()
    # Something SafeLoader treats specially: let it read the whole text.
    yield from yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
