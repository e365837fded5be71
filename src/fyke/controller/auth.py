"""Node identities for the span stream.

A node's token is NODE.HMAC-SHA256(secret, "fyke-node:" NODE). The controller holds the
secret; whoever installs a node gives it its token (the lab writes one per node). The
controller learns the node from the token alone, so an agent cannot ask for another
node's span: it cannot make that node's token without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_BYTES = 32
# The identity of whoever may query the controller (policy evaluation). Node names are DNS
# names, which never start with "_", so no node can be it.
ADMIN = "_admin"


def ensure_secret(path: Path) -> bytes:
    """The secret in `path`, made (root-only, written whole or not at all) when missing.
    A secret file that is short or not hex is an error: with a guessable secret anyone
    could make any node's token."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(SECRET_BYTES))
        os.replace(tmp, path)
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except ValueError as e:
        raise ValueError(f"{path}: not a hex secret: {e}") from e
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{path}: the secret is {len(secret)} bytes; {SECRET_BYTES} needed")
    return secret


def _mac(secret: bytes, node: str) -> str:
    return hmac.new(secret, f"fyke-node:{node}".encode(), hashlib.sha256).hexdigest()


def node_token(secret: bytes, node: str) -> str:
    if not node:
        raise ValueError("a node token needs a node name")
    return f"{node}.{_mac(secret, node)}"


def node_of(secret: bytes, token: str) -> str | None:
    """The node a token was made for, or None if the token is not genuine."""
    node, _, mac = token.strip().rpartition(".")
    if not node or not hmac.compare_digest(mac.encode(), _mac(secret, node).encode()):
        return None
    return node
