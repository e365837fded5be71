"""A throwaway OVS node for datapath benchmarks.

One network namespace `fyke-b-<name>` running its own ovsdb-server and ovs-vswitchd
(userspace datapath, LAB-NOTES), br-int, and optionally a gateway port and pods (a netns
`fyke-b-<name>-<pod>` each, with a veth whose host end is a port of br-int). Use it as
`async with BenchNode(name) as node:`; leaving the block stops both daemons by PID and
deletes every namespace and the OVS directory, also when the benchmark fails. Leftovers of a
killed run with the same name are removed before start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from fyke.datapath.pod import Gateway, PodPort
from fyke.ovs import ovsdb
from fyke.ovs.daemons import OvsDaemons
from fyke.ovs.openflow import OFConnection

PREFIX = "fyke-b-"
BRIDGE = "br-int"
GW_OFPORT = 2


def sh(
    *args: str, check: bool = True, timeout: float = 120, env: dict[str, str] | None = None
) -> str:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-2000:]}")
    return r.stdout


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchPod:
    netns: str
    port: PodPort


class BenchNode:
    def __init__(self, name: str) -> None:
        self.netns = f"{PREFIX}{name}"
        self.dir = Path("/tmp") / self.netns
        self.daemons: OvsDaemons | None = None
        self.db: ovsdb.Ovsdb | None = None
        self.conn: OFConnection | None = None
        self.gateway: Gateway | None = None
        self.pods: dict[str, BenchPod] = {}
        self._namespaces: list[str] = []

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> BenchNode:
        self._remove_leftovers()
        try:
            self._add_netns(self.netns)
            sh("ip", "-n", self.netns, "link", "set", "lo", "up")
            self.daemons = await OvsDaemons.start(dir=self.dir, netns=self.netns)
            self.db = await ovsdb.Ovsdb.connect(self.daemons.paths.db_remote)
            await self.db.transact(ovsdb.AddBridge(name=BRIDGE, datapath_type="netdev"))
            self.conn = await OFConnection.connect(self.daemons.paths.mgmt(BRIDGE))
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            if self.conn is not None:
                await self.conn.close()
            if self.db is not None:
                await self.db.close()
        finally:
            if self.daemons is not None:
                await self.daemons.stop()  # by PID: vswitchd, then ovsdb-server
            for ns in reversed(self._namespaces):
                sh("ip", "netns", "del", ns, check=False)
            self._namespaces.clear()
            shutil.rmtree(self.dir, ignore_errors=True)

    def _add_netns(self, ns: str) -> None:
        sh("ip", "netns", "add", ns)
        self._namespaces.append(ns)

    def _remove_leftovers(self) -> None:
        # Daemons of a killed run: stopped by the PIDs in their own pidfiles, and only if
        # their command line names our directory.
        for pidfile in self.dir.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pidfile.read_text().strip())
                if str(self.dir) in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)
        names = sh("ip", "netns", "list").split()
        for ns in names:
            if ns == self.netns or ns.startswith(f"{self.netns}-"):
                sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- ports --------------------------------------------------------------------------

    async def add_gateway(self, ip: str, prefix: int) -> Gateway:
        assert self.db is not None
        await self.db.transact(ovsdb.gateway_port(BRIDGE, GW_OFPORT))
        ofport = await self.db.get_ofport(ovsdb.GATEWAY_PORT)
        dev = ovsdb.GATEWAY_PORT
        sh("ip", "-n", self.netns, "addr", "add", f"{ip}/{prefix}", "dev", dev)
        sh("ip", "-n", self.netns, "link", "set", dev, "up")
        mac = sh("ip", "netns", "exec", self.netns, "cat", f"/sys/class/net/{dev}/address")
        self.gateway = Gateway(ofport=ofport, ip=ip, mac=mac.strip())
        return self.gateway

    async def add_pod(self, name: str, ip: str, prefix: int, mac: str, gateway_ip: str) -> BenchPod:
        """A pod netns with eth0 (checksum offload off: LAB-NOTES, TCP through the
        userspace datapath) whose veth peer is a port of br-int."""
        assert self.db is not None
        ns, host = f"{self.netns}-{name}", f"fyke-b-{name}"
        self._add_netns(ns)
        sh(
            "ip",
            "-n",
            self.netns,
            "link",
            "add",
            host,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns,
        )
        # The host end is only an OVS port: keep the node kernel off it (LAB-NOTES).
        sh(
            "ip",
            "netns",
            "exec",
            self.netns,
            "sysctl",
            "-qw",
            f"net.ipv6.conf.{host}.disable_ipv6=1",
        )
        sh("ip", "-n", self.netns, "link", "set", host, "arp", "off", "up")
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "set", "eth0", "address", mac, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/{prefix}", "dev", "eth0")
        sh("ip", "-n", ns, "route", "add", "default", "via", gateway_ip)
        sh("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off")
        await self.db.transact(
            ovsdb.pod_port(
                BRIDGE,
                host,
                pod_namespace="bench",
                pod_name=name,
                container_id=f"c-{name}",
                ip=ip,
                mac=mac,
            )
        )
        ofport = await self.db.get_ofport(host)
        pod = BenchPod(netns=ns, port=PodPort(ofport=ofport, name=host, ip=ip, mac=mac))
        self.pods[name] = pod
        return pod

    # --- tools --------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        assert self.daemons is not None
        return self.daemons.paths.env()

    def ofctl(self, *args: str, timeout: float = 600) -> str:
        """`ovs-ofctl -O OpenFlow15 ARGS` against this node's switch (the bridge's mgmt
        socket is found through OVS_RUNDIR)."""
        return sh("ovs-ofctl", "-O", "OpenFlow15", *args, timeout=timeout, env=self._env())

    def appctl(self, *args: str, timeout: float = 120) -> str:
        assert self.daemons is not None
        ctl = str(self.daemons.paths.vswitchd_ctl)
        return sh("ovs-appctl", "-t", ctl, *args, timeout=timeout, env=self._env())

    def dump_flows(self) -> list[str]:
        """Installed flows as ovs-ofctl prints them without counters, sorted."""
        out = self.ofctl("dump-flows", BRIDGE, "--no-stats")
        return sorted(line.strip() for line in out.splitlines() if "actions=" in line)

    def vswitchd_rss_mib(self) -> float:
        assert self.daemons is not None
        status = Path(f"/proc/{self.daemons.vswitchd.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return kib / 1024


def finish(
    bench: Callable[[Any, Path], Coroutine[Any, Any, dict[str, Any]]],
    args: Any,
    report: Callable[[dict[str, Any]], None],
) -> int:
    """Run `bench(args, scratch_dir)`, print its report (unless args.json) and its JSON
    result, which records the commit it measured. SIGTERM cancels the run, so its finally
    blocks still stop OVS and iperf3 and delete the namespaces."""
    import asyncio
    import tempfile

    async def run() -> dict[str, Any]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        with tempfile.TemporaryDirectory(prefix="fyke-bench-") as d:
            return await bench(args, Path(d))

    rev = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True
    ).stdout.strip()
    out = {"fyke": rev, **asyncio.run(run())}
    if not args.json:
        report(out)
    print(json.dumps(out))
    return 0
