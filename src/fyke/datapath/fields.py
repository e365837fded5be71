"""Register, ct_mark and cookie bit layouts, written out in one place.

Registers (32 bits each):

    reg0  [0..3]   PktSource     where the packet entered the bridge
                                 1 = gateway, 2 = local pod, 3 = tunnel
          [8]      OFPortFound   reg1 holds the output port (set in L2ForwardingCalc)
          [9..31]  reserved
    reg1  [0..31]  TargetOFPort  ofport the Output table sends to

ct_mark (32 bits), in zone CT_ZONE:

    ct_mark [0..3]  ConnSource   PktSource of the packet that committed the connection
            [4..31] reserved (services, policy logging)

Cookie (64 bits), so a reconciler can find every flow of a feature or of one object, and
remove flows of an earlier agent run (round) after a restart:

    cookie [48..63]  round       agent restart round (16 bits, wraps)
           [40..47]  feature     Feature id below
           [0..39]   object      feature-defined id (pod: its ofport; policy: rule id)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RegField:
    """Bits [start..end] (inclusive) of register `reg`."""

    reg: int
    start: int
    end: int

    @property
    def name(self) -> str:
        return f"reg{self.reg}"

    @property
    def mask(self) -> int:
        return ((1 << (self.end - self.start + 1)) - 1) << self.start

    @property
    def full(self) -> bool:
        return self.start == 0 and self.end == 31


@dataclass(frozen=True, slots=True, kw_only=True)
class RegMark:
    """A value of a RegField: `field` holds `value`."""

    field: RegField
    value: int

    @property
    def shifted(self) -> int:
        return self.value << self.field.start


PktSourceField = RegField(reg=0, start=0, end=3)
FromGatewayRegMark = RegMark(field=PktSourceField, value=1)
FromPodRegMark = RegMark(field=PktSourceField, value=2)
FromTunnelRegMark = RegMark(field=PktSourceField, value=3)
OFPortFoundField = RegField(reg=0, start=8, end=8)
OFPortFoundRegMark = RegMark(field=OFPortFoundField, value=1)
TargetOFPortField = RegField(reg=1, start=0, end=31)

ConnSourceCTMarkMask = 0xF

# One conntrack zone for all pod traffic on a node (Antrea's CtZone).
CT_ZONE = 0xFFF0

# --- cookies -------------------------------------------------------------------------

ROUND_SHIFT = 48
FEATURE_SHIFT = 40
ROUND_MASK = 0xFFFF << ROUND_SHIFT
FEATURE_MASK = 0xFF << FEATURE_SHIFT
OBJECT_MASK = (1 << FEATURE_SHIFT) - 1


class Feature(enum.IntEnum):
    PIPELINE = 1  # per-table default flows and flows not tied to one object
    GATEWAY = 2  # flows for the gateway port
    POD = 3  # flows for one local pod port (object = ofport)
    POLICY = 4
    SERVICE = 5
    TUNNEL = 6
    TRACEFLOW = 7


def make_cookie(*, round: int, feature: Feature, obj: int = 0) -> int:
    if not 0 <= obj <= OBJECT_MASK:
        raise ValueError(f"cookie object id {obj} does not fit in 40 bits")
    return ((round & 0xFFFF) << ROUND_SHIFT) | (int(feature) << FEATURE_SHIFT) | obj


def cookie_round(cookie: int) -> int:
    return (cookie & ROUND_MASK) >> ROUND_SHIFT


def cookie_feature(cookie: int) -> int:
    return (cookie & FEATURE_MASK) >> FEATURE_SHIFT


def cookie_object(cookie: int) -> int:
    return cookie & OBJECT_MASK
