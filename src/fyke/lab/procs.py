"""Processes the lab starts, tracked by PID in its state dir and stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class Processes:
    """A registry of background processes: name -> pid, persisted as pids.json."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "pids.json"
        self.logs = state_dir / "logs"

    def _load(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        loaded: dict[str, int] = json.loads(self.path.read_text())
        return loaded

    def _save(self, pids: dict[str, int]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(pids, indent=1, sort_keys=True))
        tmp.replace(self.path)

    def start(
        self, name: str, argv: Sequence[str], *, netns: str = "", env: dict[str, str] | None = None
    ) -> int:
        """Start argv detached (own session), output to logs/NAME.log; record its PID."""
        self.logs.mkdir(parents=True, exist_ok=True)
        cmd = (["ip", "netns", "exec", netns] if netns else []) + list(argv)
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        pids = self._load()
        pids[name] = proc.pid
        self._save(pids)
        return proc.pid

    def alive(self, name: str) -> bool:
        pid = self._load().get(name)
        return pid is not None and _alive(pid)

    def stop(self, name: str, timeout: float = 10.0) -> None:
        pids = self._load()
        pid = pids.pop(name, None)
        if pid is not None:
            _terminate(pid, timeout)
        self._save(pids)

    def stop_all(self, timeout: float = 10.0) -> None:
        # Last started, first stopped: agents before the API server they talk to.
        for name in reversed(list(self._load())):
            self.stop(name, timeout)

    def names(self) -> list[str]:
        return list(self._load())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie we started is not alive
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _terminate(pid: int, timeout: float) -> None:
    """SIGTERM the process group the lab started, then SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                return
            time.sleep(0.05)
