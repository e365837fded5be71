"""Node tokens: only the secret's holder makes them; odd input is refused, not a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from fyke.controller.auth import ensure_secret, node_of, node_token


def test_tokens_name_their_node_and_only_that(tmp_path: Path) -> None:
    secret = ensure_secret(tmp_path / "s")
    assert ensure_secret(tmp_path / "s") == secret  # made once, kept
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o600
    for node in ("node-1", "ip-10-0-0-1.ec2.internal"):
        assert node_of(secret, node_token(secret, node)) == node
    other = ensure_secret(tmp_path / "t")
    token = node_token(secret, "node-1")
    assert node_of(other, token) is None
    assert node_of(secret, "node-2" + token[len("node-1") :]) is None
    for bad in ("", ".", "node-1", "node-1.", "node-1.zz", "nöde.ünïcode", token + "0"):
        assert node_of(secret, bad) is None, bad
    with pytest.raises(ValueError):
        node_token(secret, "")


def test_a_short_or_garbled_secret_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("")
    with pytest.raises(ValueError, match="0 bytes"):
        ensure_secret(tmp_path / "empty")
    (tmp_path / "junk").write_text("not hex")
    with pytest.raises(ValueError, match="not a hex secret"):
        ensure_secret(tmp_path / "junk")
