"""OVSDB client for one node: bridge, gateway port, pod ports.

The ovs IDL is blocking and keeps a replica of the database, so one `Ovsdb` owns its IDL and
a one-thread executor; every IDL call runs on that thread and the event loop never blocks.
Changes are commands (frozen values) applied in one transaction; `may_exist`/`if_exists`
make repeats safe.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

# ovs.poller tries `from eventlet import patcher` only to detect monkey patching (it patches
# nothing); eventlet is installed with os-ken and warns that it is deprecated on import.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import ovs.db.idl  # type: ignore[import-untyped]
    import ovs.poller  # type: ignore[import-untyped]
    from ovsdbapp.backend.ovs_idl import idlutils  # type: ignore[import-untyped]

T = TypeVar("T")

GATEWAY_PORT = "fyke-gw0"
TUNNEL_PORT = "fyke-tun0"


class OvsdbError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class PortInfo:
    name: str
    type: str
    ofport: int | None
    external_ids: Mapping[str, str] = field(default_factory=dict)


# --- commands --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AddBridge:
    name: str
    datapath_type: str = "netdev"
    protocols: tuple[str, ...] = ("OpenFlow15",)
    fail_mode: str = "secure"
    may_exist: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class DelBridge:
    name: str
    if_exists: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class AddPort:
    """A port with one interface. type "" is a "system" port (an existing kernel device,
    e.g. a pod veth's host end); "internal" makes OVS create the device."""

    bridge: str
    name: str
    type: str = ""
    ofport_request: int | None = None
    external_ids: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    may_exist: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class DelPort:
    bridge: str
    name: str
    if_exists: bool = True


Command = AddBridge | DelBridge | AddPort | DelPort


def gateway_port(bridge: str, ofport: int) -> AddPort:
    return AddPort(bridge=bridge, name=GATEWAY_PORT, type="internal", ofport_request=ofport)


def tunnel_port(bridge: str, encap: str, ofport: int) -> AddPort:
    """The node's one tunnel port: flow-based, the remote node's IP is set per packet
    (tun_dst), so one port serves every peer."""
    if encap not in ("geneve", "vxlan"):
        raise ValueError(f"no tunnel port for encap {encap!r}")
    return AddPort(
        bridge=bridge,
        name=TUNNEL_PORT,
        type=encap,
        ofport_request=ofport,
        options={"remote_ip": "flow", "key": "flow"},
    )


def pod_port(
    bridge: str,
    name: str,
    *,
    pod_namespace: str,
    pod_name: str,
    container_id: str,
    ip: str,
    mac: str,
    ofport_request: int | None = None,
) -> AddPort:
    ids = {
        "fyke.io/pod-namespace": pod_namespace,
        "fyke.io/pod-name": pod_name,
        "fyke.io/container-id": container_id,
        "fyke.io/ip": ip,
        "fyke.io/mac": mac,
    }
    return AddPort(bridge=bridge, name=name, ofport_request=ofport_request, external_ids=ids)


# --- IDL helpers (run on the executor thread) ------------------------------------------


def _one(value: Any) -> Any:
    """Optional columns read back as lists of zero or one item."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _rows(idl: Any, table: str) -> list[Any]:
    return list(idl.tables[table].rows.values())


def _find(idl: Any, table: str, name: str) -> Any | None:
    return next((r for r in _rows(idl, table) if r.name == name), None)


def _apply(idl: Any, txn: Any, cmd: Command) -> None:
    match cmd:
        case AddBridge():
            br = _find(idl, "Bridge", cmd.name)
            if br is not None and not cmd.may_exist:
                raise OvsdbError(f"bridge {cmd.name} already exists")
            if br is None:
                iface = txn.insert(idl.tables["Interface"])
                iface.name = cmd.name
                iface.type = "internal"
                port = txn.insert(idl.tables["Port"])
                port.name = cmd.name
                port.interfaces = [iface]
                br = txn.insert(idl.tables["Bridge"])
                br.name = cmd.name
                br.ports = [port]
                _rows(idl, "Open_vSwitch")[0].addvalue("bridges", br)
            br.datapath_type = cmd.datapath_type
            br.fail_mode = cmd.fail_mode
            br.protocols = list(cmd.protocols)
            br.setkey("other_config", "disable-in-band", "true")
        case DelBridge():
            br = _find(idl, "Bridge", cmd.name)
            if br is None:
                if not cmd.if_exists:
                    raise OvsdbError(f"no bridge {cmd.name}")
                return
            _rows(idl, "Open_vSwitch")[0].delvalue("bridges", br)
        case AddPort():
            br = _find(idl, "Bridge", cmd.bridge)
            if br is None:
                raise OvsdbError(f"no bridge {cmd.bridge} for port {cmd.name}")
            port = _find(idl, "Port", cmd.name)
            if port is not None and not cmd.may_exist:
                raise OvsdbError(f"port {cmd.name} already exists")
            if port is None:
                iface = txn.insert(idl.tables["Interface"])
                iface.name = cmd.name
                port = txn.insert(idl.tables["Port"])
                port.name = cmd.name
                port.interfaces = [iface]
                br.addvalue("ports", port)
            iface = port.interfaces[0]
            iface.type = cmd.type
            if cmd.ofport_request is not None:
                iface.ofport_request = [cmd.ofport_request]
            port.external_ids = dict(cmd.external_ids)
            iface.external_ids = dict(cmd.external_ids)
            iface.options = dict(cmd.options)
        case DelPort():
            br = _find(idl, "Bridge", cmd.bridge)
            port = _find(idl, "Port", cmd.name)
            if br is None or port is None or port not in br.ports:
                if not cmd.if_exists:
                    raise OvsdbError(f"no port {cmd.name} on bridge {cmd.bridge}")
                return
            br.delvalue("ports", port)


class Ovsdb:
    """Use `await Ovsdb.connect("unix:/path/db.sock")`; `await db.close()` when done."""

    def __init__(self, idl: Any, executor: ThreadPoolExecutor) -> None:
        self._idl = idl
        self._executor = executor

    async def _call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    @classmethod
    async def connect(cls, remote: str, *, timeout: float = 10.0) -> Ovsdb:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fyke-ovsdb")

        def open_idl() -> Any:
            helper = idlutils.get_schema_helper(remote, "Open_vSwitch")
            for table in ("Open_vSwitch", "Bridge", "Port", "Interface"):
                helper.register_table(table)
            idl = ovs.db.idl.Idl(remote, helper)
            deadline = time.monotonic() + timeout
            while not idl.has_ever_connected() or idl.change_seqno == 0:
                idl.run()
                if time.monotonic() > deadline:
                    idl.close()
                    raise OvsdbError(f"{remote}: no database replica after {timeout}s")
                poller = ovs.poller.Poller()
                idl.wait(poller)
                poller.timer_wait(100)
                poller.block()
            return idl

        try:
            idl = await asyncio.get_running_loop().run_in_executor(executor, open_idl)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        db = cls(idl, executor)
        await db._ensure_root()
        return db

    async def close(self) -> None:
        await self._call(self._idl.close)
        self._executor.shutdown(wait=True)

    async def _ensure_root(self) -> None:
        def ensure() -> None:
            self._idl.run()
            if not _rows(self._idl, "Open_vSwitch"):
                txn = ovs.db.idl.Transaction(self._idl)
                root = txn.insert(self._idl.tables["Open_vSwitch"])
                root.next_cfg = 0  # the IDL sends no insert for a row without changes
                self._commit(txn)

        await self._call(ensure)

    def _commit(self, txn: Any) -> None:
        status = txn.commit_block()
        if status not in (txn.SUCCESS, txn.UNCHANGED):
            raise OvsdbError(f"transaction {status}: {txn.get_error()}")

    async def transact(self, *commands: Command) -> None:
        """Apply `commands` in one transaction (retried if the replica was stale)."""

        def run() -> None:
            for _ in range(5):
                self._idl.run()
                txn = ovs.db.idl.Transaction(self._idl)
                for cmd in commands:
                    _apply(self._idl, txn, cmd)
                status = txn.commit_block()
                if status == txn.TRY_AGAIN:
                    continue
                if status not in (txn.SUCCESS, txn.UNCHANGED):
                    raise OvsdbError(f"transaction {status}: {txn.get_error()}")
                return
            raise OvsdbError("transaction kept failing with TRY_AGAIN")

        await self._call(run)

    async def list_ports(self, bridge: str) -> list[PortInfo]:
        def read() -> list[PortInfo]:
            self._idl.run()
            br = _find(self._idl, "Bridge", bridge)
            if br is None:
                return []
            out = []
            for port in br.ports:
                iface = port.interfaces[0] if port.interfaces else None
                ofport = _one(iface.ofport) if iface is not None else None
                out.append(
                    PortInfo(
                        name=port.name,
                        type=iface.type if iface is not None else "",
                        ofport=ofport if ofport is not None and ofport > 0 else None,
                        external_ids=dict(port.external_ids),
                    )
                )
            return sorted(out, key=lambda p: p.name)

        return await self._call(read)

    async def get_ofport(self, name: str, *, timeout: float = 5.0) -> int:
        """The ofport of interface `name`, waiting for vswitchd to assign it."""
        deadline = time.monotonic() + timeout

        def read() -> int | None:
            self._idl.run()
            iface = _find(self._idl, "Interface", name)
            if iface is None:
                raise OvsdbError(f"no interface {name}")
            ofport = _one(iface.ofport)
            if ofport == -1:
                err = _one(iface.error)
                raise OvsdbError(f"interface {name} failed: {err}")
            return int(ofport) if ofport else None

        while True:
            ofport = await self._call(read)
            if ofport is not None:
                return ofport
            if time.monotonic() > deadline:
                raise OvsdbError(f"interface {name}: no ofport after {timeout}s")
            await asyncio.sleep(0.01)
