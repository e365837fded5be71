"""A real lab API server process per test (tracked by PID), and real kubectl against it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FYKECTL = Path(sys.executable).with_name("fykectl")


@dataclass
class LabApiServer:
    data_dir: Path
    listen: str = "127.0.0.1:0"
    proc: subprocess.Popen[str] | None = None
    server: str = ""
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(FYKECTL),
                "lab",
                "apiserver",
                "--listen",
                self.listen,
                "--data-dir",
                str(self.data_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.stop()
            raise RuntimeError(f"lab apiserver did not start: {line}")
        self.server = line.split("listening on ")[1].split(";")[0]
        # Keep the same port across restarts, as a real server would.
        self.listen = self.server.removeprefix("https://")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        out = subprocess.run(
            ["kubectl", *args], input=stdin, env=env, capture_output=True, text=True, timeout=60
        )
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {out.stderr}")
        return out

    def kubectl_bg(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        p = subprocess.Popen(
            ["kubectl", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.stop()


@pytest.fixture
def apiserver(tmp_path: Path) -> Iterator[LabApiServer]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed on this machine")
    srv = LabApiServer(tmp_path / "lab")
    srv.start()
    try:
        yield srv
    finally:
        srv.close()
