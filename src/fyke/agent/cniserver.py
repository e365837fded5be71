"""The agent's CNI server: `fyke-cni` requests over a unix socket -> IPAM, veth, switch port.

One JSON request per connection (format in `fyke.cni.protocol`); the socket file is mode 0600
in a 0700 directory, so only root can ask for pod networking. Requests for one container are
serialized by a per-container lock; different containers proceed in parallel, and IPAM keeps
its own lock.

ADD either completes or leaves nothing behind: each step is undone if a later one fails. DEL,
and therefore GC, is idempotent and succeeds for containers the agent does not know.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, TypeVar

from fyke.agent.ipam import Ipam, IpamError
from fyke.agent.plumbing import (
    NetnsGone,
    PlumbingError,
    VethPlumbing,
    host_ifname,
)
from fyke.agent.ports import PodIdentity, PortAttacher
from fyke.cni.protocol import (
    DEFAULT_AGENT_SOCKET,
    DEFAULT_MTU,
    MAX_MESSAGE_BYTES,
    CniError,
    Code,
    convert_result,
    normalize_result,
    parse_cni_args,
    validate_config,
    validate_container_id,
    validate_ifname,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class CniRequest:
    command: str
    pod: PodIdentity
    netns: str
    config: dict[str, Any]
    version: str

    @property
    def host_ifname(self) -> str:
        return host_ifname(self.pod.container_id, self.pod.ifname)

    @classmethod
    def from_wire(cls, msg: Any) -> CniRequest:
        if not isinstance(msg, dict) or not isinstance(msg.get("config"), dict):
            raise CniError(Code.DECODE_FAILURE, "malformed request", "expected {command, config}")
        command = str(msg.get("command", ""))
        if command not in ("ADD", "DEL", "CHECK", "STATUS", "GC"):
            raise CniError(Code.INVALID_ENV, f"unsupported CNI_COMMAND {command!r}")
        config: dict[str, Any] = msg["config"]
        version = validate_config(config, command)
        container_id = str(msg.get("containerID", ""))
        ifname = str(msg.get("ifname", ""))
        netns = str(msg.get("netns", ""))
        if command in ("ADD", "DEL", "CHECK"):
            validate_container_id(container_id)
            validate_ifname(ifname)
        if command in ("ADD", "CHECK") and not netns:
            raise CniError(Code.INVALID_ENV, "missing environment variable CNI_NETNS")
        args = parse_cni_args(str(msg.get("args", "")))
        pod = PodIdentity(
            container_id=container_id,
            ifname=ifname,
            namespace=args.get("K8S_POD_NAMESPACE", ""),
            name=args.get("K8S_POD_NAME", ""),
            uid=args.get("K8S_POD_UID", ""),
        )
        return cls(command=command, pod=pod, netns=netns, config=config, version=version)


class KeyedLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


def _error(code: Code, what: str, e: BaseException) -> CniError:
    return e if isinstance(e, CniError) else CniError(code, what, f"{type(e).__name__}: {e}")


class CniServer:
    """Serves CNI requests for one node's podCIDR.

    `ready=False` answers STATUS with 50 and ADD/CHECK with 11 until `set_ready(True)`,
    e.g. while the OVS bridge is not up yet.
    """

    def __init__(
        self,
        *,
        ipam: Ipam,
        plumbing: VethPlumbing,
        attacher: PortAttacher,
        socket_path: Path | str = DEFAULT_AGENT_SOCKET,
        ready: bool = True,
        mtu: int = DEFAULT_MTU,
    ) -> None:
        self.ipam = ipam
        self.mtu = mtu  # the node's pod MTU; a network config's "mtu" overrides it
        self.plumbing = plumbing
        self.attacher = attacher
        self.socket_path = Path(socket_path)
        self.locks = KeyedLocks()
        self._ready = ready
        self._not_ready_reason = "the fyke agent is starting"
        self._ipam_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ipam")
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self._ready = ready
        self._not_ready_reason = reason or "the fyke agent is not ready"

    # -- socket --------------------------------------------------------------------------

    async def start(self) -> None:
        path = self.socket_path
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        if path.exists() or path.is_symlink():
            if await self._someone_listens():
                raise RuntimeError(f"{path}: another fyke agent is serving CNI requests")
            path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(path))
        os.chmod(path, 0o600)
        log.info("CNI server listening on %s", path)

    async def _someone_listens(self) -> bool:
        try:
            _, writer = await asyncio.open_unix_connection(str(self.socket_path))
        except OSError:
            return False
        writer.close()
        return True

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        self._ipam_executor.shutdown(wait=True)

    async def __aenter__(self) -> CniServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            data = b""
            while chunk := await reader.read(65536):
                data += chunk
                if len(data) > MAX_MESSAGE_BYTES:
                    break
            if len(data) > MAX_MESSAGE_BYTES:
                reply: dict[str, Any] = {
                    "error": CniError(Code.DECODE_FAILURE, "request too large").to_wire()
                }
            else:
                try:
                    msg = json.loads(data)
                except ValueError as e:
                    err = CniError(Code.DECODE_FAILURE, "request is not JSON", str(e))
                    reply = {"error": err.to_wire()}
                else:
                    reply = await self.handle(msg)
            writer.write(json.dumps(reply).encode())
            await writer.drain()
        except (ConnectionError, OSError) as e:
            log.warning("CNI connection failed: %s", e)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            self._conns.discard(task)

    # -- dispatch ------------------------------------------------------------------------

    async def handle(self, msg: Any) -> dict[str, Any]:
        """One wire request -> one wire reply ({"result": ...} or {"error": ...})."""
        try:
            req = CniRequest.from_wire(msg)
            handler = {
                "ADD": self.add,
                "DEL": self.delete,
                "CHECK": self.check,
                "STATUS": self.status,
                "GC": self.gc,
            }[req.command]
            result = await handler(req)
        except CniError as e:
            log.info("CNI %s failed: %s", msg.get("command") if isinstance(msg, dict) else "", e)
            return {"error": e.to_wire()}
        except Exception as e:
            log.exception("CNI request failed")
            return {"error": _error(Code.INTERNAL, "internal error in the fyke agent", e).to_wire()}
        return {"result": result}

    async def _ipam_call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._ipam_executor, fn, *args)

    async def add(self, req: CniRequest) -> dict[str, Any]:
        if not self._ready:
            raise CniError(Code.TRY_AGAIN_LATER, self._not_ready_reason)
        pod, host = req.pod, req.host_ifname
        mtu = int(req.config.get("mtu", self.mtu))
        async with self.locks.hold(pod.container_id):
            # A repeated ADD rebuilds the attachment; IPAM hands back the same address.
            await self._remove_plumbing(host)
            try:
                ip = await self._ipam_call(
                    self.ipam.allocate, pod.container_id, pod.ifname, pod.key
                )
            except IpamError as e:
                raise CniError(Code.IPAM_FAILURE, str(e)) from e
            stage = (Code.INTERFACE_FAILURE, f"cannot set up {pod.ifname} in {req.netns}")
            try:
                iface = await self.plumbing.setup(
                    netns=req.netns,
                    host_ifname=host,
                    pod_ifname=pod.ifname,
                    mtu=mtu,
                    address=self.ipam.interface(ip),
                    gateway=self.ipam.gateway,
                )
                stage = (Code.PORT_FAILURE, f"cannot attach {host} to the switch")
                await self.attacher.attach(host, pod, ip, iface.pod_mac)
            except BaseException as e:
                await self._undo_add(req)
                if isinstance(e, NetnsGone):
                    raise CniError(Code.UNKNOWN_CONTAINER, str(e)) from e
                if isinstance(e, Exception):
                    raise _error(stage[0], stage[1], e) from e
                raise
        log.info("ADD %s %s -> %s on %s", pod.key, pod.container_id[:12], ip, host)
        return self._result(req, ip, iface.host_mac, iface.pod_mac, mtu)

    def _result(
        self, req: CniRequest, ip: IPv4Address, host_mac: str, pod_mac: str, mtu: int
    ) -> dict[str, Any]:
        prev = normalize_result(req.config.get("prevResult") or {})
        interfaces = prev["interfaces"]
        gateway = str(self.ipam.gateway)
        interfaces.append({"name": req.host_ifname, "mac": host_mac})
        interfaces.append(
            {"name": req.pod.ifname, "mac": pod_mac, "mtu": mtu, "sandbox": req.netns}
        )
        prev["ips"].append(
            {
                "address": str(self.ipam.interface(ip)),
                "gateway": gateway,
                "interface": len(interfaces) - 1,
            }
        )
        prev["routes"].append({"dst": "0.0.0.0/0", "gw": gateway})
        prev["dns"] = prev.get("dns") or req.config.get("dns") or {}
        return convert_result(prev, req.version)

    async def _undo_add(self, req: CniRequest) -> None:
        """Best effort: each step is tried even if an earlier one fails."""
        for step in (
            lambda: self.attacher.detach(req.host_ifname),
            lambda: self.plumbing.teardown(req.host_ifname),
            lambda: self._ipam_call(self.ipam.release, req.pod.container_id, req.pod.ifname),
        ):
            try:
                await step()
            except Exception:
                log.exception("undoing ADD of %s", req.pod.container_id)

    async def _remove_plumbing(self, host: str) -> None:
        try:
            await self.attacher.detach(host)
        except Exception as e:
            raise _error(Code.PORT_FAILURE, f"cannot detach {host} from the switch", e) from e
        try:
            await self.plumbing.teardown(host)
        except Exception as e:
            raise _error(Code.INTERFACE_FAILURE, f"cannot delete {host}", e) from e

    async def delete(self, req: CniRequest) -> None:
        pod = req.pod
        async with self.locks.hold(pod.container_id):
            await self._remove_plumbing(req.host_ifname)
            try:
                ip = await self._ipam_call(self.ipam.release, pod.container_id, pod.ifname)
            except IpamError as e:
                raise CniError(Code.IPAM_FAILURE, str(e)) from e
        log.info("DEL %s %s (released %s)", pod.key, pod.container_id[:12], ip)

    async def check(self, req: CniRequest) -> None:
        if not self._ready:
            raise CniError(Code.TRY_AGAIN_LATER, self._not_ready_reason)
        pod, host = req.pod, req.host_ifname
        async with self.locks.hold(pod.container_id):
            alloc = self.ipam.get(pod.container_id, pod.ifname)
            if alloc is None:
                raise CniError(
                    Code.UNKNOWN_CONTAINER,
                    f"no fyke attachment for container {pod.container_id} interface {pod.ifname}",
                )
            address = self.ipam.interface(alloc.ip)
            prev_ips = [
                ip.get("address") for ip in (req.config.get("prevResult") or {}).get("ips", [])
            ]
            if prev_ips and str(address) not in prev_ips:
                raise CniError(
                    Code.CHECK_FAILED, f"prevResult does not list the pod's address {address}"
                )
            try:
                await self.plumbing.check(
                    netns=req.netns,
                    host_ifname=host,
                    pod_ifname=pod.ifname,
                    address=address,
                    gateway=self.ipam.gateway,
                )
            except NetnsGone as e:
                raise CniError(Code.UNKNOWN_CONTAINER, str(e)) from e
            except PlumbingError as e:
                raise CniError(Code.CHECK_FAILED, str(e)) from e
            if not await self.attacher.check(host):
                raise CniError(Code.CHECK_FAILED, f"{host} is not attached to the switch")

    async def status(self, req: CniRequest) -> None:
        if not self._ready:
            raise CniError(Code.PLUGIN_NOT_AVAILABLE, self._not_ready_reason)

    async def gc(self, req: CniRequest) -> None:
        """Remove every attachment not in cni.dev/valid-attachments, and stray host veths."""
        valid_list = req.config.get("cni.dev/valid-attachments") or []
        valid = {(a["containerID"], a.get("ifname", "")) for a in valid_list}
        valid_ids = {cid for cid, ifname in valid if not ifname}
        # Veths first: an ADD allocates its address before creating its veth, so every veth
        # listed here belongs to an allocation visible below.
        veths = await self.plumbing.host_veths()
        allocations = self.ipam.allocations()
        keep_hosts = {host_ifname(cid, ifname) for cid, ifname in valid}
        for a in allocations:
            if (a.container_id, a.ifname) in valid or a.container_id in valid_ids:
                keep_hosts.add(host_ifname(a.container_id, a.ifname))
                continue
            pod = PodIdentity(container_id=a.container_id, ifname=a.ifname)
            stale = CniRequest(
                command="DEL", pod=pod, netns="", config=req.config, version=req.version
            )
            log.info("GC: removing %s/%s (%s)", a.container_id[:12], a.ifname, a.ip)
            await self.delete(stale)
        for name in veths:
            if name not in keep_hosts:
                log.info("GC: removing stray veth %s", name)
                await self._remove_plumbing(name)
