"""Errors a user can act on: the object, the field path, and what is wrong."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ObjectRef:
    """Names one Kubernetes object in messages: `Kind ns/name` or `Kind name`."""

    kind: str
    name: str
    namespace: str | None = None

    def __str__(self) -> str:
        if self.namespace:
            return f"{self.kind} {self.namespace}/{self.name}"
        return f"{self.kind} {self.name}"


class ValidationError(Exception):
    """An object is invalid; the message names the object and the field path."""

    def __init__(self, ref: ObjectRef | None, path: str, message: str) -> None:
        self.ref = ref
        self.path = path
        self.message = message
        where = f"{ref}: " if ref is not None else ""
        field = f"{path}: " if path else ""
        super().__init__(f"{where}{field}{message}")
