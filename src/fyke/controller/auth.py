"""Node identities for the span stream.

A node's token is NODE.HMAC-SHA256(secret, "fyke-node:" NODE). The controller holds the
secret; whoever installs a node gives it its token (the lab writes one per node). The
controller learns the node from the token alone, so an agent cannot ask for another
node's span: it cannot make that node's token without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path


def ensure_secret(path: Path) -> bytes:
    """The secret in `path`, made (root-only) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _mac(secret: bytes, node: str) -> str:
    return hmac.new(secret, f"fyke-node:{node}".encode(), hashlib.sha256).hexdigest()


def node_token(secret: bytes, node: str) -> str:
    if not node:
        raise ValueError("a node token needs a node name")
    return f"{node}.{_mac(secret, node)}"


def node_of(secret: bytes, token: str) -> str | None:
    """The node a token was made for, or None if the token is not genuine."""
    node, _, mac = token.strip().rpartition(".")
    if not node or not hmac.compare_digest(mac, _mac(secret, node)):
        return None
    return node
