"""The OpenFlow pipeline: every table declared once, in pipeline order, grouped in stages.

Ids leave gaps between stages so a table can be added to a stage without renumbering the
next one. A feature names the tables it needs by their constants; nothing else hard-codes an
id.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Stage(enum.Enum):
    CLASSIFICATION = "classification"
    VALIDATION = "validation"
    CONNTRACK_STATE = "conntrackState"
    PRE_ROUTING = "preRouting"
    EGRESS_SECURITY = "egressSecurity"
    ROUTING = "routing"
    SWITCHING = "switching"
    INGRESS_SECURITY = "ingressSecurity"
    CONNTRACK = "conntrack"
    OUTPUT = "output"


@dataclass(frozen=True, slots=True, kw_only=True)
class Table:
    name: str
    id: int
    stage: Stage

    def __str__(self) -> str:
        return self.name


Classifier = Table(name="Classifier", id=0, stage=Stage.CLASSIFICATION)
SpoofGuard = Table(name="SpoofGuard", id=10, stage=Stage.VALIDATION)
# ARP never enters conntrack: after SpoofGuard it is answered here or switched by MAC.
ARPResponder = Table(name="ARPResponder", id=11, stage=Stage.VALIDATION)
ConntrackZone = Table(name="ConntrackZone", id=20, stage=Stage.CONNTRACK_STATE)
ConntrackState = Table(name="ConntrackState", id=21, stage=Stage.CONNTRACK_STATE)
SessionAffinity = Table(name="SessionAffinity", id=30, stage=Stage.PRE_ROUTING)
ServiceLB = Table(name="ServiceLB", id=31, stage=Stage.PRE_ROUTING)
EndpointDNAT = Table(name="EndpointDNAT", id=32, stage=Stage.PRE_ROUTING)
TierPolicyEgress = Table(name="TierPolicyEgress", id=40, stage=Stage.EGRESS_SECURITY)
EgressRule = Table(name="EgressRule", id=41, stage=Stage.EGRESS_SECURITY)
EgressDefault = Table(name="EgressDefault", id=42, stage=Stage.EGRESS_SECURITY)
L3Forwarding = Table(name="L3Forwarding", id=50, stage=Stage.ROUTING)
L2ForwardingCalc = Table(name="L2ForwardingCalc", id=60, stage=Stage.SWITCHING)
TierPolicyIngress = Table(name="TierPolicyIngress", id=70, stage=Stage.INGRESS_SECURITY)
IngressRule = Table(name="IngressRule", id=71, stage=Stage.INGRESS_SECURITY)
IngressDefault = Table(name="IngressDefault", id=72, stage=Stage.INGRESS_SECURITY)
ConntrackCommit = Table(name="ConntrackCommit", id=80, stage=Stage.CONNTRACK)
Output = Table(name="Output", id=90, stage=Stage.OUTPUT)

PIPELINE: tuple[Table, ...] = (
    Classifier,
    SpoofGuard,
    ARPResponder,
    ConntrackZone,
    ConntrackState,
    SessionAffinity,
    ServiceLB,
    EndpointDNAT,
    TierPolicyEgress,
    EgressRule,
    EgressDefault,
    L3Forwarding,
    L2ForwardingCalc,
    TierPolicyIngress,
    IngressRule,
    IngressDefault,
    ConntrackCommit,
    Output,
)

_BY_NAME = {t.name: t for t in PIPELINE}
_BY_ID = {t.id: t for t in PIPELINE}


def by_name(name: str) -> Table:
    return _BY_NAME[name]


def by_id(table_id: int) -> Table | None:
    return _BY_ID.get(table_id)


def next_table(table: Table) -> Table:
    """The table after `table` in pipeline order (Output has none)."""
    i = PIPELINE.index(table)
    if i + 1 >= len(PIPELINE):
        raise ValueError(f"table {table.name} is the last table of the pipeline")
    return PIPELINE[i + 1]


def _check() -> None:
    ids = [t.id for t in PIPELINE]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "table ids must ascend"
    assert len(_BY_NAME) == len(PIPELINE), "table names must be unique"


_check()
