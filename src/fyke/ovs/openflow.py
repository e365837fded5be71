"""One OpenFlow 1.5 connection to a bridge's management socket, on asyncio.

os-ken's ofproto_v1_5 parser only encodes and decodes messages; this module owns the
socket: hello, features, echo replies, request/reply by xid, multipart, barrier and
bundles. It imports nothing of os-ken's eventlet-based controller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from os_ken.ofproto import ofproto_parser  # type: ignore[import-untyped]
from os_ken.ofproto import ofproto_v1_5 as ofp
from os_ken.ofproto import ofproto_v1_5_parser as parser

from fyke.ovs.encode import bundle_add
from fyke.ovs.translate import DP

_HEADER = struct.Struct("!BBHI")
NXPIF_NXT_PACKET_IN2 = 2  # NXT_SET_PACKET_IN_FORMAT value (os-ken has no constant for it)
NXPINT_COOKIE = 4  # NXT_PACKET_IN2 property
log = logging.getLogger("fyke.ovs.openflow")


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketIn:
    """A packet-in, OFPT_PACKET_IN or NXT_PACKET_IN2, decoded to what handlers need.

    in_port: where the packet entered the bridge; userdata: a controller(userdata=...)
    action's bytes (b"" for OFPT_PACKET_IN); match: the decoded os-ken OFPMatch of the
    pipeline fields (registers, ...) at the controller action.
    """

    data: bytes
    in_port: int
    table_id: int
    cookie: int
    reason: int
    userdata: bytes
    match: Any


PacketInHandler = Callable[[PacketIn], None]


def decode_packet_in(msg: Any) -> PacketIn | None:
    """A PacketIn from an os-ken OFPPacketIn or NXTPacketIn2; None for other messages."""
    if isinstance(msg, parser.OFPPacketIn):
        match, userdata, cookie = msg.match, b"", msg.cookie
    elif isinstance(msg, parser.NXTPacketIn2):
        # The metadata property is the OXM fields without the ofp_match header.
        meta = bytes(msg.metadata or b"")
        head = struct.pack("!HH", ofp.OFPMT_OXM, 4 + len(meta))
        match = parser.OFPMatch.parser(head + meta + bytes(-(4 + len(meta)) % 8), 0)
        userdata = bytes(msg.userdata or b"")
        # os-ken reads the cookie property's 4 padding bytes as the cookie's high half.
        cookie = next(
            (
                struct.unpack_from("!Q", p.data, 4)[0]
                for p in msg.properties
                if p.type == NXPINT_COOKIE and len(p.data) >= 12
            ),
            0,
        )
    else:
        return None
    return PacketIn(
        data=bytes(msg.data or b""),
        in_port=int(match.get("in_port", ofp.OFPP_ANY)),
        table_id=int(msg.table_id or 0),
        cookie=int(cookie),
        reason=int(msg.reason or 0),
        userdata=userdata,
        match=match,
    )


class OpenFlowError(RuntimeError):
    def __init__(self, what: str, type_: int, code: int, data: bytes) -> None:
        super().__init__(f"{what}: OpenFlow error type={type_} code={code} data={data[:64]!r}")
        self.type = type_
        self.code = code
        self.data = data


class OFConnection:
    """Use `await OFConnection.connect(path)`; `await conn.close()` when done."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._xid = 0
        self._pending: dict[int, asyncio.Future[list[Any]]] = {}
        self._parts: dict[int, list[Any]] = {}
        self._task: asyncio.Task[None] | None = None
        self.datapath_id = 0
        # Unsolicited messages (packet-in, port-status, ...); set by the owner.
        self.on_message: Callable[[Any], None] | None = None
        self._packet_in_handlers: list[PacketInHandler] = []
        # Bundle id -> (xids, errors) of the bundles being sent: their bundle-add errors.
        self._collectors: dict[int, tuple[set[int], list[OpenFlowError]]] = {}

    # --- lifecycle ----------------------------------------------------------------------

    @classmethod
    async def connect(cls, path: Path | str, *, timeout: float = 5.0) -> OFConnection:
        """Connect, retrying while vswitchd has not created the socket yet."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.02)
        conn = cls(reader, writer)
        try:
            await asyncio.wait_for(conn._handshake(), timeout)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _handshake(self) -> None:
        bitmap = parser.OFPHelloElemVersionBitmap([ofp.OFP_VERSION])
        self._send(parser.OFPHello(DP, elements=[bitmap]))
        version, msg_type, _, _, _ = await self._read_raw()
        if msg_type != ofp.OFPT_HELLO or version != ofp.OFP_VERSION:
            raise OpenFlowError("hello: switch does not speak OpenFlow 1.5", 0, 0, b"")
        self._task = asyncio.create_task(self._read_loop(), name="fyke-openflow-reader")
        (features,) = await self.request(parser.OFPFeaturesRequest(DP))
        self.datapath_id = features.datapath_id

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
        self._fail_pending(ConnectionError("OpenFlow connection closed"))

    # --- wire ---------------------------------------------------------------------------

    def _next_xid(self) -> int:
        self._xid = self._xid % 0xFFFFFFFF + 1
        return self._xid

    def _send(self, msg: Any, xid: int | None = None) -> int:
        msg.set_xid(self._next_xid() if xid is None else xid)
        msg.serialize()
        self._writer.write(bytes(msg.buf))
        return int(msg.xid)

    async def _read_raw(self) -> tuple[int, int, int, int, bytes]:
        head = await self._reader.readexactly(_HEADER.size)
        version, msg_type, length, xid = _HEADER.unpack(head)
        body = await self._reader.readexactly(length - _HEADER.size)
        return version, msg_type, length, xid, head + body

    async def _read_loop(self) -> None:
        try:
            while True:
                version, msg_type, length, xid, buf = await self._read_raw()
                msg = ofproto_parser.msg(DP, version, msg_type, length, xid, buf)
                self._dispatch(msg)
        except (asyncio.IncompleteReadError, ConnectionError) as e:
            self._fail_pending(ConnectionError(f"OpenFlow connection lost: {e}"))

    def _dispatch(self, msg: Any) -> None:
        if isinstance(msg, parser.OFPEchoRequest):
            self._send(parser.OFPEchoReply(DP, data=msg.data), xid=msg.xid)
            return
        if self._packet_in_handlers and (pin := decode_packet_in(msg)) is not None:
            for handler in list(self._packet_in_handlers):
                try:
                    handler(pin)
                except Exception:
                    log.exception("packet-in handler %r failed", handler)
        fut = self._pending.get(msg.xid)
        if fut is None and isinstance(msg, parser.OFPErrorMsg):
            for xids, failed in self._collectors.values():
                if msg.xid in xids:
                    failed.append(OpenFlowError("bundle add", msg.type, msg.code, bytes(msg.data)))
                    return
        if fut is None:
            if self.on_message is not None:
                self.on_message(msg)
            return
        if isinstance(msg, parser.OFPErrorMsg):
            del self._pending[msg.xid]
            self._parts.pop(msg.xid, None)
            if not fut.done():
                fut.set_exception(OpenFlowError("request", msg.type, msg.code, bytes(msg.data)))
            return
        parts = self._parts.setdefault(msg.xid, [])
        parts.append(msg)
        if isinstance(msg, parser.OFPMultipartReply) and msg.flags & ofp.OFPMPF_REPLY_MORE:
            return
        del self._pending[msg.xid]
        del self._parts[msg.xid]
        if not fut.done():
            fut.set_result(parts)

    def _fail_pending(self, exc: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self._pending.clear()
        self._parts.clear()

    def _expect(self, xid: int) -> asyncio.Future[list[Any]]:
        fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[xid] = fut
        return fut

    # --- packet-in ----------------------------------------------------------------------

    def add_packet_in_handler(self, handler: PacketInHandler) -> Callable[[], None]:
        """Call `handler` (on the reader task: keep it short) for every packet-in; returns
        a function that removes it. The switch sends packet-ins only after
        `enable_packet_in()`."""
        self._packet_in_handlers.append(handler)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._packet_in_handlers.remove(handler)

        return remove

    async def enable_packet_in(self, miss_send_len: int = ofp.OFPCML_NO_BUFFER) -> None:
        """Receive packet-ins as NXT_PACKET_IN2 (the only format that carries a
        controller action's userdata: in the default format OVS sends OFPT_PACKET_IN and
        drops it), and SET_CONFIG with a nonzero miss_send_len: OVS sends no packet-in at
        all to a service connection (the bridge's mgmt socket) while it is 0."""
        if not miss_send_len:
            raise ValueError("miss_send_len 0 turns packet-ins off")
        self._send(parser.NXTSetPacketInFormatMsg(DP, NXPIF_NXT_PACKET_IN2))
        self._send(parser.OFPSetConfig(DP, ofp.OFPC_FRAG_NORMAL, miss_send_len))
        await self.barrier()

    # --- requests -----------------------------------------------------------------------

    def send(self, msg: Any) -> int:
        """Send without waiting for a reply; returns the xid."""
        return self._send(msg)

    async def request(self, msg: Any, timeout: float = 10.0) -> list[Any]:
        """Send `msg`, return its reply (all parts of a multipart reply)."""
        xid = self._next_xid()
        fut = self._expect(xid)
        self._send(msg, xid=xid)
        await self._writer.drain()
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(xid, None)

    async def checked(self, msg: Any, timeout: float = 10.0) -> None:
        """Send a message that has no reply on success; raise its error, if any."""
        xid = self._next_xid()
        fut = self._expect(xid)
        self._send(msg, xid=xid)
        try:
            await self.request(parser.OFPBarrierRequest(DP), timeout)
            if fut.done() and fut.exception() is not None:
                raise fut.exception()  # type: ignore[misc]
        finally:
            if not fut.done():
                fut.cancel()
            with contextlib.suppress(BaseException):
                fut.exception()
            self._pending.pop(xid, None)

    async def barrier(self) -> None:
        await self.request(parser.OFPBarrierRequest(DP))

    async def dump_flows(self, *, cookie: int = 0, cookie_mask: int = 0) -> list[Any]:
        """Installed flows (os-ken OFPFlowDesc) whose cookie matches under the mask."""
        req = parser.OFPFlowDescStatsRequest(
            DP,
            0,
            ofp.OFPTT_ALL,
            ofp.OFPP_ANY,
            ofp.OFPG_ANY,
            cookie,
            cookie_mask,
            parser.OFPMatch(),
        )
        replies = await self.request(req)
        return [desc for reply in replies for desc in reply.body]

    async def bundle(self, messages: Iterable[Any], timeout: float = 30.0) -> None:
        """Apply `messages` atomically and in order: all of them or none.

        A message is an os-ken message or one already serialized (`bytes`, any xid, e.g.
        from `encode.FlowEncoder`). `messages` is consumed as it is sent, so a generator
        that encodes lets the switch check the first messages while the rest are made."""
        flags = ofp.OFPBF_ATOMIC | ofp.OFPBF_ORDERED
        bundle_id = self._next_xid()
        await self.request(
            parser.OFPBundleCtrlMsg(DP, bundle_id, ofp.OFPBCT_OPEN_REQUEST, flags, []), timeout
        )
        # Bundle-add messages have no reply unless they fail: their errors are collected
        # by xid rather than through a future per message.
        failed: list[OpenFlowError] = []
        xids: set[int] = set()
        self._collectors[bundle_id] = (xids, failed)
        try:
            try:
                await self._bundle_adds(messages, bundle_id, flags, xids)
            except BaseException:
                # Making a message failed half way (the generator raised, or the sync was
                # cancelled): nothing was committed, and the switch need not keep the
                # half-filled bundle. Sent without waiting: a cancelled task cannot wait.
                with contextlib.suppress(Exception):
                    ctrl = ofp.OFPBCT_DISCARD_REQUEST
                    self._send(parser.OFPBundleCtrlMsg(DP, bundle_id, ctrl, flags, []))
                raise
            # OVS checks each message when it is added and leaves a bad one out of the
            # bundle; the commit would then apply the rest. A barrier flushes those
            # errors out first, so any of them discards the whole bundle.
            await self.request(parser.OFPBarrierRequest(DP), timeout)
            if failed:
                ctrl = ofp.OFPBCT_DISCARD_REQUEST
                await self.request(parser.OFPBundleCtrlMsg(DP, bundle_id, ctrl, flags, []))
                raise failed[0]
            ctrl = ofp.OFPBCT_COMMIT_REQUEST
            await self.request(parser.OFPBundleCtrlMsg(DP, bundle_id, ctrl, flags, []), timeout)
        finally:
            del self._collectors[bundle_id]

    async def _bundle_adds(
        self, messages: Iterable[Any], bundle_id: int, flags: int, xids: set[int]
    ) -> None:
        chunk: list[bytes] = []
        for m in messages:
            xid = self._next_xid()
            xids.add(xid)
            if isinstance(m, bytes):
                chunk.append(bundle_add(m, bundle_id=bundle_id, flags=flags, xid=xid))
            else:
                msg = parser.OFPBundleAddMsg(DP, bundle_id, flags, m, [])
                msg.set_xid(xid)
                msg.serialize()
                chunk.append(bytes(msg.buf))
            if len(chunk) == 256:
                self._writer.write(b"".join(chunk))
                chunk.clear()
                await self._writer.drain()
                await asyncio.sleep(0)  # drain() yields only when the buffer is full
        if chunk:
            self._writer.write(b"".join(chunk))

    async def packet_out(self, data: bytes, *, in_port: int, actions: list[Any]) -> None:
        """Inject `data` as if received on `in_port` (actions e.g. output to OFPP_TABLE)."""
        self._send(
            parser.OFPPacketOut(
                DP,
                buffer_id=ofp.OFP_NO_BUFFER,
                match=parser.OFPMatch(in_port=in_port),
                actions=actions,
                data=data,
            )
        )
        await self._writer.drain()
