"""The CNI wire format shared by the `fyke-cni` shim and the agent's CNI server.

Standard library only: the shim imports this on every pod sandbox event.

One request per unix-socket connection: the shim writes one JSON object, half-closes, and reads
one JSON reply::

    request: {"command": "ADD", "containerID": ..., "netns": ..., "ifname": ...,
              "args": "K8S_POD_NAMESPACE=x;...", "path": ..., "config": {plugin config}}
    reply:   {"result": {CNI result} | null}  or  {"error": {"code": N, "msg": ..., "details": ...}}

Results are built in the CNI 1.1.0 shape and converted to the config's cniVersion on the way out.
"""

from __future__ import annotations

import json
import re
from enum import IntEnum
from typing import Any

CURRENT_VERSION = "1.1.0"
SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
PLUGIN_TYPE = "fyke-cni"  # the binary a runtime runs for this type
DEFAULT_AGENT_SOCKET = "/run/fyke/cni.sock"
DEFAULT_MTU = 1450
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

# Attachment commands; VERSION never reaches the agent.
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")

_CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_IFNAME_BAD = re.compile(r"[/:\s%]")


class Code(IntEnum):
    """Error codes: 1-99 are the spec's well-known codes, 100+ are fyke's own."""

    INCOMPATIBLE_VERSION = 1
    UNSUPPORTED_FIELD = 2
    UNKNOWN_CONTAINER = 3
    INVALID_ENV = 4
    IO_FAILURE = 5
    DECODE_FAILURE = 6
    INVALID_CONFIG = 7
    TRY_AGAIN_LATER = 11
    PLUGIN_NOT_AVAILABLE = 50
    LIMITED_CONNECTIVITY = 51
    INTERNAL = 100
    IPAM_FAILURE = 101
    INTERFACE_FAILURE = 102
    CHECK_FAILED = 103
    PORT_FAILURE = 104


class CniError(Exception):
    """An error a runtime can act on; printed on stdout as the spec's error JSON."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(f"{msg}: {details}" if details else msg)
        self.code = int(code)
        self.msg = msg
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg, "details": self.details}

    def to_json(self, cni_version: str) -> dict[str, Any]:
        return {"cniVersion": cni_version, **self.to_wire()}

    @classmethod
    def from_wire(cls, obj: Any) -> CniError:
        if not isinstance(obj, dict) or not isinstance(obj.get("code"), int):
            return cls(Code.DECODE_FAILURE, "malformed error from the fyke agent", repr(obj))
        return cls(obj["code"], str(obj.get("msg", "")), str(obj.get("details", "")))


def parse_cni_args(args: str) -> dict[str, str]:
    """CNI_ARGS "IgnoreUnknown=1;K8S_POD_NAMESPACE=x;..." -> dict (code 4 if malformed)."""
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in args.split(";"))):
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CniError(Code.INVALID_ENV, "invalid CNI_ARGS", f"{pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def validate_container_id(container_id: str) -> None:
    if not _CONTAINER_ID.match(container_id):
        raise CniError(
            Code.INVALID_ENV,
            "invalid CNI_CONTAINERID",
            f"{container_id!r}: must start with a letter or digit, then letters, digits, _ . -",
        )


def validate_ifname(ifname: str) -> None:
    if not ifname or len(ifname) > 15 or ifname in (".", "..") or _IFNAME_BAD.search(ifname):
        raise CniError(
            Code.INVALID_ENV,
            "invalid CNI_IFNAME",
            f"{ifname!r}: must be 1-15 characters without '/', ':', '%' or whitespace",
        )


def decode_config(raw: bytes | str) -> dict[str, Any]:
    """Network configuration from stdin -> the fyke plugin's config (conflist form accepted).

    A conflist's top-level cniVersion and name are copied into the chosen plugin entry, as a
    runtime does when it executes one plugin of a list.
    """
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CniError(Code.DECODE_FAILURE, "network config is not valid JSON", str(e)) from e
    if not isinstance(obj, dict):
        raise CniError(Code.INVALID_CONFIG, "network config must be a JSON object")
    if "plugins" in obj:
        plugins = obj["plugins"]
        if not isinstance(plugins, list) or not all(isinstance(p, dict) for p in plugins):
            raise CniError(Code.INVALID_CONFIG, "invalid network config", "plugins: must be a list")
        mine = [p for p in plugins if p.get("type") == PLUGIN_TYPE]
        if len(mine) != 1:
            raise CniError(
                Code.INVALID_CONFIG,
                "invalid network config",
                f"plugins: expected exactly one entry of type {PLUGIN_TYPE!r}, found {len(mine)}",
            )
        obj = {**mine[0], "cniVersion": obj.get("cniVersion"), "name": obj.get("name")}
    return obj


def validate_config(config: dict[str, Any], command: str) -> str:
    """Check the fields fyke reads; returns the config's cniVersion."""
    version = config.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(Code.INVALID_CONFIG, "invalid network config", "cniVersion: required")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            f"incompatible CNI version {version}",
            f"fyke supports {', '.join(SUPPORTED_VERSIONS)}",
        )
    if command in ("STATUS", "GC") and version != "1.1.0":
        raise CniError(
            Code.INCOMPATIBLE_VERSION,
            f"{command} needs cniVersion 1.1.0",
            f"the config says {version}",
        )
    name = config.get("name")
    if not isinstance(name, str) or not name:
        raise CniError(Code.INVALID_CONFIG, "invalid network config", "name: required")
    mtu = config.get("mtu", DEFAULT_MTU)
    if isinstance(mtu, bool) or not isinstance(mtu, int) or not 68 <= mtu <= 65535:
        raise CniError(
            Code.INVALID_CONFIG, "invalid network config", f"mtu: {mtu!r} is not in 68..65535"
        )
    socket = config.get("agentSocket", DEFAULT_AGENT_SOCKET)
    if not isinstance(socket, str) or not socket.startswith("/"):
        raise CniError(
            Code.INVALID_CONFIG, "invalid network config", "agentSocket: must be an absolute path"
        )
    ipam = config.get("ipam")
    if isinstance(ipam, dict) and ipam.get("type"):
        raise CniError(
            Code.UNSUPPORTED_FIELD,
            "unsupported field in network config",
            f"ipam.type: fyke allocates from the node's podCIDR; remove {ipam['type']!r}",
        )
    prev = config.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise CniError(Code.INVALID_CONFIG, "invalid network config", "prevResult: must be object")
    valid = config.get("cni.dev/valid-attachments")
    if command == "GC" and valid is not None:
        ok = isinstance(valid, list) and all(
            isinstance(a, dict) and isinstance(a.get("containerID"), str) for a in valid
        )
        if not ok:
            raise CniError(
                Code.INVALID_CONFIG,
                "invalid network config",
                "cni.dev/valid-attachments: must be a list of {containerID, ifname}",
            )
    return version


def normalize_result(result: dict[str, Any]) -> dict[str, Any]:
    """A result of any supported version -> the 1.x shape (0.4.0's ips[].version dropped)."""
    out = dict(result)
    out["interfaces"] = [dict(i) for i in result.get("interfaces", [])]
    out["ips"] = [{k: v for k, v in ip.items() if k != "version"} for ip in result.get("ips", [])]
    out["routes"] = [dict(r) for r in result.get("routes", [])]
    return out


def convert_result(result: dict[str, Any], version: str) -> dict[str, Any]:
    """A 1.1.0-shaped result -> the shape of `version` (mtu is new in 1.1.0; 0.4.0 has
    ips[].version)."""
    body = normalize_result(result)
    body.pop("cniVersion", None)
    out = {"cniVersion": version, **body}
    if version != "1.1.0":
        out["interfaces"] = [{k: v for k, v in i.items() if k != "mtu"} for i in out["interfaces"]]
    if version == "0.4.0":
        out["ips"] = [
            {**ip, "version": "6" if ":" in str(ip.get("address", "")) else "4"}
            for ip in out["ips"]
        ]
    return out


def version_result(requested: str | None) -> dict[str, Any]:
    return {
        "cniVersion": requested if requested in SUPPORTED_VERSIONS else CURRENT_VERSION,
        "supportedVersions": list(SUPPORTED_VERSIONS),
    }
