"""ovsdb-server and ovs-vswitchd for one node, optionally inside a network namespace.

Everything lives in one private directory (rundir = dbdir = logdir = sysconfdir), so the
bridge management socket is `<dir>/<bridge>.mgmt` and several nodes can run side by side.
Both daemons are our children, tracked by PID and stopped by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

VSWITCH_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


class OvsStartError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class OvsPaths:
    dir: Path

    @property
    def db_file(self) -> Path:
        return self.dir / "conf.db"

    @property
    def db_sock(self) -> Path:
        return self.dir / "db.sock"

    @property
    def db_remote(self) -> str:
        return f"unix:{self.db_sock}"

    @property
    def vswitchd_ctl(self) -> Path:
        return self.dir / "ovs-vswitchd.ctl"

    @property
    def ovsdb_ctl(self) -> Path:
        return self.dir / "ovsdb-server.ctl"

    def mgmt(self, bridge: str) -> Path:
        return self.dir / f"{bridge}.mgmt"

    def env(self) -> dict[str, str]:
        d = str(self.dir)
        return {
            **os.environ,
            "OVS_RUNDIR": d,
            "OVS_DBDIR": d,
            "OVS_LOGDIR": d,
            "OVS_SYSCONFDIR": d,
        }


def _in_netns(netns: str | None, argv: list[str]) -> list[str]:
    # `ip netns exec` execs the command, so the PID we get is the daemon's PID.
    return ["ip", "netns", "exec", netns, *argv] if netns else argv


async def _run(argv: list[str], env: dict[str, str]) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise OvsStartError(f"{' '.join(argv)}: exit {proc.returncode}: {(out + err).decode()}")


async def _db_answers(sock: Path) -> bool:
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock))
    except OSError:
        return False
    try:
        writer.write(json.dumps({"method": "list_dbs", "params": [], "id": 0}).encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), 1.0)
        return b"Open_vSwitch" in data
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _ctl_exists(path: Path) -> bool:
    return path.exists()


async def _stop(proc: asyncio.subprocess.Process, timeout: float) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()


class OvsDaemons:
    """A running ovsdb-server + ovs-vswitchd pair. Use `start()`, then `stop()`."""

    def __init__(
        self,
        *,
        paths: OvsPaths,
        netns: str | None,
        ovsdb: asyncio.subprocess.Process,
        vswitchd: asyncio.subprocess.Process,
    ) -> None:
        self.paths = paths
        self.netns = netns
        self.ovsdb = ovsdb
        self.vswitchd = vswitchd

    @property
    def pids(self) -> tuple[int, int]:
        return (self.ovsdb.pid, self.vswitchd.pid)

    @classmethod
    async def start(
        cls, *, dir: Path, netns: str | None = None, timeout: float = 10.0
    ) -> OvsDaemons:
        paths = OvsPaths(dir=dir)
        dir.mkdir(parents=True, exist_ok=True)
        env = paths.env()
        if not paths.db_file.exists():
            await _run(["ovsdb-tool", "create", str(paths.db_file), str(VSWITCH_SCHEMA)], env)
        log = open(dir / "daemons.out", "ab")  # noqa: SIM115 - handed to both children
        try:
            ovsdb = await asyncio.create_subprocess_exec(
                *_in_netns(
                    netns,
                    [
                        "ovsdb-server",
                        str(paths.db_file),
                        f"--remote=punix:{paths.db_sock}",
                        f"--unixctl={paths.ovsdb_ctl}",
                        f"--pidfile={dir / 'ovsdb-server.pid'}",
                        f"--log-file={dir / 'ovsdb-server.log'}",
                        "--no-chdir",
                        "-vconsole:off",
                    ],
                ),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            try:
                await _wait_for(lambda: _db_answers(paths.db_sock), ovsdb, timeout, "ovsdb-server")
                vswitchd = await asyncio.create_subprocess_exec(
                    *_in_netns(
                        netns,
                        [
                            "ovs-vswitchd",
                            paths.db_remote,
                            f"--unixctl={paths.vswitchd_ctl}",
                            f"--pidfile={dir / 'ovs-vswitchd.pid'}",
                            f"--log-file={dir / 'ovs-vswitchd.log'}",
                            "--no-chdir",
                            "-vconsole:off",
                        ],
                    ),
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                )
            except BaseException:
                await _stop(ovsdb, 2.0)
                raise
            try:
                await _wait_for(
                    lambda: _ctl_exists(paths.vswitchd_ctl), vswitchd, timeout, "ovs-vswitchd"
                )
            except BaseException:
                await _stop(vswitchd, 2.0)
                await _stop(ovsdb, 2.0)
                raise
        finally:
            log.close()
        return cls(paths=paths, netns=netns, ovsdb=ovsdb, vswitchd=vswitchd)

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM each daemon by PID (vswitchd first), SIGKILL after `timeout`."""
        await _stop(self.vswitchd, timeout)
        await _stop(self.ovsdb, timeout)

    async def appctl(self, *args: str) -> str:
        """`ovs-appctl` against this node's ovs-vswitchd; returns stdout."""
        argv = ["ovs-appctl", "-t", str(self.paths.vswitchd_ctl), *args]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env=self.paths.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {err.decode().strip()}")
        return out.decode()


async def _wait_for(
    ready: Callable[[], Awaitable[bool]],
    proc: asyncio.subprocess.Process,
    timeout: float,
    what: str,
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not await ready():
        if proc.returncode is not None:
            raise OvsStartError(f"{what} exited with {proc.returncode}; see its log file")
        if time.monotonic() > deadline:
            raise OvsStartError(f"{what} not ready after {timeout}s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)
