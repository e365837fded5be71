"""Typed reads of Kubernetes JSON with field paths in every error."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fyke.api.errors import ObjectRef, ValidationError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Reader:
    """Reads fields of one object; every failure names the object and the path."""

    ref: ObjectRef

    def fail(self, path: str, message: str) -> ValidationError:
        return ValidationError(self.ref, path, message)

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if type(value) is dict:  # the common case, without an ABC check
            return value
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, f"must be an object, got {_kind_of(value)}")
        return value

    def items(self, value: Any, path: str) -> Sequence[Any]:
        """A list field; a missing (null) list reads as empty."""
        if type(value) is list:
            return value
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"must be a list, got {_kind_of(value)}")
        return value

    def string(self, m: Mapping[str, Any], key: str, path: str, *, required: bool = False) -> str:
        value = m.get(key)
        if value is None:
            if required:
                raise self.fail(f"{path}.{key}" if path else key, "required value")
            return ""
        if not isinstance(value, str):
            raise self.fail(f"{path}.{key}" if path else key, f"must be a string, got {value!r}")
        return value

    def integer(
        self,
        m: Mapping[str, Any],
        key: str,
        path: str,
        *,
        lo: int | None = None,
        hi: int | None = None,
        required: bool = False,
    ) -> int | None:
        where = f"{path}.{key}" if path else key
        value = m.get(key)
        if value is None:
            if required:
                raise self.fail(where, "required value")
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"must be an integer, got {value!r}")
        check_range(self, where, value, lo, hi)
        return int(value)

    def number(
        self,
        m: Mapping[str, Any],
        key: str,
        path: str,
        *,
        lo: float | None = None,
        hi: float | None = None,
        required: bool = False,
    ) -> float | None:
        where = f"{path}.{key}" if path else key
        value = m.get(key)
        if value is None:
            if required:
                raise self.fail(where, "required value")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"must be a number, got {value!r}")
        check_range(self, where, value, lo, hi)
        return float(value)

    def cidr(self, value: Any, path: str) -> IPNetwork:
        if not isinstance(value, str) or "/" not in value:
            raise self.fail(path, f"must be a CIDR such as 10.0.0.0/16, got {value!r}")
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError as e:
            raise self.fail(path, f"invalid CIDR {value!r}: {e}") from None

    def one_of(self, value: str, path: str, allowed: Sequence[str]) -> str:
        if value not in allowed:
            choices = ", ".join(allowed)
            raise self.fail(path, f"unsupported value {value!r}: must be one of {choices}")
        return value


def check_range(r: Reader, where: str, value: float, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo:
        raise r.fail(where, f"must be >= {_num(lo)}, got {_num(value)}")
    if hi is not None and value > hi:
        raise r.fail(where, f"must be <= {_num(hi)}, got {_num(value)}")


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _kind_of(value: Any) -> str:
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__
