"""Kubernetes Status errors."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as a metav1.Status."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            out["details"] = self.details
        return out


def _about(code: int, reason: str, group: str, plural: str, name: str, template: str) -> ApiError:
    """An error about one object; template gets {what} (plural.group) and {name}."""
    what = f"{plural}.{group}" if group else plural
    return ApiError(
        code,
        reason,
        template.format(what=what, name=name),
        {"name": name, "group": group, "kind": plural},
    )


def not_found(group: str, plural: str, name: str) -> ApiError:
    return _about(404, "NotFound", group, plural, name, '{what} "{name}" not found')


def already_exists(group: str, plural: str, name: str) -> ApiError:
    return _about(409, "AlreadyExists", group, plural, name, '{what} "{name}" already exists')


def conflict(group: str, plural: str, name: str) -> ApiError:
    return _about(
        409,
        "Conflict",
        group,
        plural,
        name,
        'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def invalid(kind: str, group: str, name: str, causes: list[dict[str, str]]) -> ApiError:
    what = f"{kind}.{group}" if group else kind
    text = "; ".join(
        f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes
    )
    return ApiError(
        422,
        "Invalid",
        f'{what} "{name}" is invalid: {text}',
        {"name": name, "group": group, "kind": kind, "causes": causes},
    )


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)
