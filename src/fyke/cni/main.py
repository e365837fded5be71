"""`fyke-cni`: the CNI plugin the container runtime executes (standard library only).

It validates the environment and the network config, forwards the request as one JSON message
over the agent's unix socket ("agentSocket" in the config, default /run/fyke/cni.sock) and prints
the agent's result. Errors are the spec's error JSON on stdout with exit code 1.

When the agent cannot be reached: STATUS answers 50 (plugin not available); ADD, CHECK, DEL and
GC answer 11 (try again later). DEL deliberately does not report success then: the attachment's
IP, veth and OVS port may still exist, and the runtime retries a failed DEL, whereas a false
success would leak them until the next GC. With the agent up, DEL of an unknown container
succeeds.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any, TextIO

from fyke.cni.protocol import (
    COMMANDS,
    CURRENT_VERSION,
    DEFAULT_AGENT_SOCKET,
    MAX_MESSAGE_BYTES,
    CniError,
    Code,
    decode_config,
    parse_cni_args,
    validate_config,
    validate_container_id,
    validate_ifname,
    version_result,
)

# Environment each command needs (CNI 1.1.0, "Parameters").
_REQUIRED_ENV = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
    "VERSION": (),
}
DEFAULT_TIMEOUT_S = 120.0


def call_agent(path: str, request: dict[str, Any], timeout: float) -> Any:
    """One request, one reply; raises OSError when the agent is unreachable or hangs up."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(json.dumps(request).encode())
        sock.shutdown(socket.SHUT_WR)
        chunks: list[bytes] = []
        size = 0
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_MESSAGE_BYTES:
                raise CniError(Code.DECODE_FAILURE, "reply from the fyke agent is too large")
    if not chunks:
        raise ConnectionResetError("the fyke agent closed the connection without a reply")
    try:
        return json.loads(b"".join(chunks))
    except ValueError as e:
        raise CniError(Code.DECODE_FAILURE, "reply from the fyke agent is not JSON", str(e)) from e


def run(env: dict[str, str], stdin: bytes) -> dict[str, Any] | None:
    """Execute one CNI command; returns the JSON to print (None prints nothing)."""
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise CniError(Code.INVALID_ENV, "missing environment variable CNI_COMMAND")
    if command not in COMMANDS:
        raise CniError(
            Code.INVALID_ENV,
            f"unknown CNI_COMMAND {command!r}",
            f"expected one of {', '.join(COMMANDS)}",
        )
    missing = [v for v in _REQUIRED_ENV[command] if not env.get(v)]
    if missing:
        raise CniError(
            Code.INVALID_ENV,
            f"missing environment variable {missing[0]}",
            f"{command} needs {', '.join(_REQUIRED_ENV[command])}",
        )
    if command == "VERSION":
        requested = None
        if stdin.strip():
            try:
                requested = json.loads(stdin).get("cniVersion")
            except (ValueError, AttributeError):
                requested = None
        return version_result(requested)

    config = decode_config(stdin)
    validate_config(config, command)
    container_id = env.get("CNI_CONTAINERID", "")
    ifname = env.get("CNI_IFNAME", "")
    if command in ("ADD", "CHECK", "DEL"):
        validate_container_id(container_id)
        validate_ifname(ifname)
    args = env.get("CNI_ARGS", "")
    parse_cni_args(args)
    request = {
        "command": command,
        "containerID": container_id,
        "netns": env.get("CNI_NETNS", ""),
        "ifname": ifname,
        "args": args,
        "path": env.get("CNI_PATH", ""),
        "config": config,
    }
    path = config.get("agentSocket", DEFAULT_AGENT_SOCKET)
    timeout = float(config.get("agentTimeoutSeconds", DEFAULT_TIMEOUT_S))
    try:
        reply = call_agent(path, request, timeout)
    except OSError as e:
        if command == "STATUS":
            raise CniError(
                Code.PLUGIN_NOT_AVAILABLE, "the fyke agent is not running", f"{path}: {e}"
            ) from e
        raise CniError(
            Code.TRY_AGAIN_LATER,
            "the fyke agent is unreachable; try again later",
            f"{path}: {e}",
        ) from e
    if not isinstance(reply, dict):
        raise CniError(Code.DECODE_FAILURE, "reply from the fyke agent is not an object")
    if "error" in reply:
        raise CniError.from_wire(reply["error"])
    result = reply.get("result")
    if result is not None and not isinstance(result, dict):
        raise CniError(Code.DECODE_FAILURE, "result from the fyke agent is not an object")
    return result


def _requested_version(stdin: bytes) -> str:
    try:
        obj = json.loads(stdin)
    except ValueError:
        return CURRENT_VERSION
    version = obj.get("cniVersion") if isinstance(obj, dict) else None
    return version if isinstance(version, str) and version else CURRENT_VERSION


def main(
    env: dict[str, str] | None = None, stdin: bytes | None = None, out: TextIO | None = None
) -> int:
    env = dict(os.environ) if env is None else env
    data = sys.stdin.buffer.read() if stdin is None else stdin
    out = sys.stdout if out is None else out
    try:
        result = run(env, data)
    except CniError as e:
        json.dump(e.to_json(_requested_version(data)), out)
        out.write("\n")
        return 1
    except Exception as e:  # a bug must still produce the error JSON the runtime parses
        err = CniError(Code.INTERNAL, "fyke-cni failed", f"{type(e).__name__}: {e}")
        json.dump(err.to_json(_requested_version(data)), out)
        out.write("\n")
        return 1
    if result is not None:
        json.dump(result, out)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
