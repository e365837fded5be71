"""Kubernetes label selectors: parsing, validation and matching."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from fyke.api.fields import Reader

Labels = Mapping[str, str]

_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class Operator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True, slots=True, kw_only=True)
class Requirement:
    key: str
    operator: Operator
    values: frozenset[str] = frozenset()

    def matches(self, labels: Labels) -> bool:
        match self.operator:
            case Operator.IN:
                return labels.get(self.key) in self.values
            case Operator.NOT_IN:
                return labels.get(self.key) not in self.values
            case Operator.EXISTS:
                return self.key in labels
            case Operator.DOES_NOT_EXIST:
                return self.key not in labels


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelector:
    """matchLabels and matchExpressions, ANDed. The empty selector selects everything."""

    requirements: tuple[Requirement, ...] = ()
    # Derived: key=value pairs every match must carry, and the other requirements. Kept
    # apart because matching and index look-ups are hot paths at scale.
    _pairs: tuple[tuple[str, str], ...] = field(default=(), init=False, compare=False, repr=False)
    _others: tuple[Requirement, ...] = field(default=(), init=False, compare=False, repr=False)
    _text: str = field(default="", init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        pairs = []
        others = []
        for r in self.requirements:
            if r.operator is Operator.IN and len(r.values) == 1:
                pairs.append((r.key, next(iter(r.values))))
            else:
                others.append(r)
        object.__setattr__(self, "_pairs", tuple(pairs))
        object.__setattr__(self, "_others", tuple(others))

    @property
    def is_empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Labels) -> bool:
        for k, v in self._pairs:
            if labels.get(k) != v:
                return False
        return all(r.matches(labels) for r in self._others)

    def equality_pairs(self) -> tuple[tuple[str, str], ...]:
        """key=value pairs that every match must carry (used to index lookups)."""
        return self._pairs

    def __str__(self) -> str:
        if not self._text:
            object.__setattr__(self, "_text", self._render())
        return self._text

    def _render(self) -> str:
        parts = []
        for r in self.requirements:
            if r.operator is Operator.IN and len(r.values) == 1:
                parts.append(f"{r.key}={next(iter(r.values))}")
            elif r.operator is Operator.EXISTS:
                parts.append(r.key)
            elif r.operator is Operator.DOES_NOT_EXIST:
                parts.append(f"!{r.key}")
            else:
                vals = ",".join(sorted(r.values))
                parts.append(f"{r.key} {r.operator.value.lower()} ({vals})")
        return ",".join(parts) if parts else "<all>"


EVERYTHING = LabelSelector()


def selector(labels: Labels) -> LabelSelector:
    """A selector that matches exactly the given key=value pairs."""
    return LabelSelector(
        requirements=tuple(
            Requirement(key=k, operator=Operator.IN, values=frozenset({v}))
            for k, v in sorted(labels.items())
        )
    )


@functools.lru_cache(maxsize=65536)
def _key_problem(key: str) -> str:
    """What is wrong with a label key ("" when nothing); cached: keys repeat a lot."""
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _PREFIX.match(prefix)):
        return f"invalid label key {key!r}: prefix must be a DNS subdomain"
    if not _NAME.match(name):
        return (
            f"invalid label key {key!r}: name part must be 63 characters or less, start and "
            "end with an alphanumeric character, with '-', '_' or '.' between"
        )
    return ""


@functools.lru_cache(maxsize=65536)
def _value_ok(value: str) -> bool:
    return len(value) <= 63 and _VALUE.match(value) is not None


def validate_key(r: Reader, key: Any, path: str) -> str:
    if not isinstance(key, str) or not key:
        raise r.fail(path, f"invalid label key {key!r}")
    problem = _key_problem(key)
    if problem:
        raise r.fail(path, problem)
    return key


def validate_value(r: Reader, value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise r.fail(path, f"label value must be a string, got {value!r}")
    if not _value_ok(value):
        raise r.fail(path, f"invalid label value {value!r}")
    return value


def parse_labels(r: Reader, value: Any, path: str) -> dict[str, str]:
    m = r.mapping(value, path)
    out: dict[str, str] = {}
    for k, v in m.items():
        validate_key(r, k, path)
        out[k] = validate_value(r, v, f"{path}[{k}]")
    return out


_INTERNED: dict[tuple[tuple[str, str], ...], LabelSelector] = {}


def parse_selector(r: Reader, value: Any, path: str) -> LabelSelector:
    m = r.mapping(value, path)
    ml = m.get("matchLabels")
    if len(m) <= 1 and (ml is None or isinstance(ml, Mapping)) and (ml or len(m) == 0):
        # The common shape (matchLabels only): one shared, already-validated value per
        # distinct label set.
        key = tuple(sorted(ml.items())) if ml else ()
        found = _INTERNED.get(key)
        if found is not None:
            return found
        if len(_INTERNED) < 100_000:
            found = _parse_selector(r, m, path)
            _INTERNED[key] = found
            return found
    return _parse_selector(r, m, path)


def _parse_selector(r: Reader, m: Mapping[str, Any], path: str) -> LabelSelector:
    for key in m:
        if key not in ("matchLabels", "matchExpressions"):
            raise r.fail(f"{path}.{key}", "unknown field in a label selector")
    reqs: list[Requirement] = []
    for k, v in parse_labels(r, m.get("matchLabels"), f"{path}.matchLabels").items():
        reqs.append(Requirement(key=k, operator=Operator.IN, values=frozenset({v})))
    for i, expr in enumerate(r.items(m.get("matchExpressions"), f"{path}.matchExpressions")):
        epath = f"{path}.matchExpressions[{i}]"
        e = r.mapping(expr, epath)
        key = validate_key(r, r.string(e, "key", epath, required=True), f"{epath}.key")
        op_text = r.string(e, "operator", epath, required=True)
        try:
            op = Operator(op_text)
        except ValueError:
            raise r.fail(
                f"{epath}.operator",
                f"unsupported operator {op_text!r}: must be one of In, NotIn, Exists, "
                "DoesNotExist",
            ) from None
        values = r.items(e.get("values"), f"{epath}.values")
        for j, v in enumerate(values):
            validate_value(r, v, f"{epath}.values[{j}]")
        if op in (Operator.IN, Operator.NOT_IN) and not values:
            raise r.fail(f"{epath}.values", f"must be specified when operator is {op.value}")
        if op in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
            raise r.fail(f"{epath}.values", f"may not be specified when operator is {op.value}")
        reqs.append(Requirement(key=key, operator=op, values=frozenset(values)))
    return LabelSelector(requirements=tuple(reqs))


def _split_requirements(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if cur:
        parts.append("".join(cur).strip())
    return [p for p in parts if p]


_SET_EXPR = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")


def parse_selector_string(r: Reader, text: str, path: str) -> LabelSelector:
    """The query-string form: `a=b,c!=d,e in (f,g),h notin (i),j,!k`."""
    reqs: list[Requirement] = []
    for part in _split_requirements(text):
        m = _SET_EXPR.match(part)
        if m:
            key, op, values = m.group(1), m.group(2), m.group(3)
            vals = frozenset(v.strip() for v in values.split(",") if v.strip())
            for v in vals:
                validate_value(r, v, path)
            reqs.append(
                Requirement(
                    key=validate_key(r, key, path),
                    operator=Operator.IN if op == "in" else Operator.NOT_IN,
                    values=vals,
                )
            )
        elif "!=" in part:
            key, _, value = part.partition("!=")
            reqs.append(
                Requirement(
                    key=validate_key(r, key.strip(), path),
                    operator=Operator.NOT_IN,
                    values=frozenset({validate_value(r, value.strip(), path)}),
                )
            )
        elif "=" in part:
            key, _, value = part.partition("==" if "==" in part else "=")
            reqs.append(
                Requirement(
                    key=validate_key(r, key.strip(), path),
                    operator=Operator.IN,
                    values=frozenset({validate_value(r, value.strip(), path)}),
                )
            )
        elif part.startswith("!"):
            reqs.append(
                Requirement(
                    key=validate_key(r, part[1:].strip(), path), operator=Operator.DOES_NOT_EXIST
                )
            )
        else:
            reqs.append(Requirement(key=validate_key(r, part, path), operator=Operator.EXISTS))
    return LabelSelector(requirements=tuple(reqs))
