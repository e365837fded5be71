"""A node's span: what one node needs of the cluster's compiled policies, by pod name.

The controller compiles the cluster once and cuts one span per node: the internal
NetworkPolicies with a rule that protects a pod on that node, the AppliedToGroups of those
rules (only the node's own pods) and their AddressGroups (the peers, as address blocks).
It sends a node its span as a snapshot, then as incremental updates (`diff`: members
added to or removed from a group, a policy added, changed or deleted); the agent applies
them (`apply`) and turns the span into flows (`node_policy`) once its pods' OVS ports are
known. Nothing here knows about sockets or OVS.

Names are stable across recompiles, so a change of membership is a small update:
  policy          GROUP/KIND/NAMESPACE/NAME of the source object (realized.json's key)
  rule key        POLICY|DIRECTION|INDEX plus |SPLIT when the rule is split per node
  groups          "to:" / "peers:" + rule key; the node's pods a K8s NetworkPolicy
                  isolates: "isolated:" + POLICY|DIRECTION

`versions` holds (uid, generation) of every policy object of the cluster the span was
computed from, including policies that need nothing on the node: a node has realized a
policy generation when its flows come from a span with that version.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fyke.api.core import Direction, IPBlock, Protocol
from fyke.datapath.policy import SUB_BITS, NodePolicy, RealizedRule, Service
from fyke.datapath.policy_realize import realize_pods
from fyke.policy.evaluate import Evaluator
from fyke.policy.model import Action, Layer, PolicyInfo, Rule

APPLIED_GROUP = "AppliedToGroup"
ADDRESS_GROUP = "AddressGroup"
POLICY = "NetworkPolicy"
MAX_RULE_ID = (1 << (32 - SUB_BITS)) - 2  # conj_id = (id << SUB_BITS | sub) + 1 < 2**32


def policy_name(info: PolicyInfo) -> str:
    group = info.api_version.rpartition("/")[0]
    return f"{group}/{info.kind}/{info.namespace}/{info.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanRule:
    key: str
    direction: Direction
    index: int
    name: str
    action: Action
    action_text: str
    order: tuple[Any, ...]
    logged: bool = False
    log_label: str = ""
    applied_group: str
    address_group: str | None  # None: every peer
    services: tuple[Service, ...] | None  # None: every port of every protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class SpanPolicy:
    """isolates: (direction, AppliedToGroup) of the pods it isolates (K8s NetworkPolicy);
    log_isolation: their isolation drops go to the audit log."""

    name: str
    info: PolicyInfo
    rules: tuple[SpanRule, ...]
    isolates: tuple[tuple[Direction, str], ...] = ()
    log_isolation: bool = False


@dataclass(slots=True)
class NodeSpan:
    policies: dict[str, SpanPolicy] = field(default_factory=dict)
    applied_groups: dict[str, frozenset[str]] = field(default_factory=dict)
    address_groups: dict[str, frozenset[str]] = field(default_factory=dict)
    versions: dict[str, tuple[str, int]] = field(default_factory=dict)


# --- cutting spans ----------------------------------------------------------------------


def block_text(block: IPBlock) -> str:
    return " ".join([str(block.cidr), *(f"!{e}" for e in block.excepts)])


def parse_block(text: str) -> IPBlock:
    cidr, *excepts = text.split()
    return IPBlock(
        cidr=ipaddress.ip_network(cidr),
        excepts=tuple(ipaddress.ip_network(e.removeprefix("!")) for e in excepts),
    )


def rule_key(rule: Rule) -> str:
    return f"{policy_name(rule.policy)}|{rule.direction.value}|{rule.index}"


def cluster_spans(
    ev: Evaluator, nodes: Iterable[str], versions: Mapping[str, tuple[str, int]]
) -> dict[str, NodeSpan]:
    """The span of each node named in `nodes` (a node with no pods gets an empty one)."""
    by_node: dict[str, list[int]] = defaultdict(list)
    for i, pod in enumerate(ev.cluster.pods):
        if pod.node_name:
            by_node[pod.node_name].append(i)
    texts = PeerTexts()  # one rule split's peers: the same on every node
    return {n: node_span(ev, by_node.get(n, []), versions, texts) for n in nodes}


class PeerTexts:
    """Address-group texts shared by the spans of one compiled cluster: by rule split, by
    peer tuple (the realizer hands rules with the same peers one tuple) and by address
    block (a pod's block is one object wherever it appears)."""

    def __init__(self) -> None:
        self.by_split: dict[tuple[int, str], frozenset[str]] = {}
        self._by_peers: dict[int, tuple[tuple[IPBlock, ...], frozenset[str]]] = {}
        self._by_block: dict[int, tuple[IPBlock, str]] = {}

    def of(self, rule_id: int, split: str, peers: tuple[IPBlock, ...]) -> frozenset[str]:
        key = (rule_id, split)
        found = self.by_split.get(key)
        if found is None:
            seen = self._by_peers.get(id(peers))
            if seen is None:
                seen = self._by_peers[id(peers)] = (peers, frozenset(map(self._text, peers)))
            found = self.by_split[key] = seen[1]
        return found

    def _text(self, block: IPBlock) -> str:
        seen = self._by_block.get(id(block))
        if seen is None:
            seen = self._by_block[id(block)] = (block, block_text(block))
        return seen[1]


def node_span(
    ev: Evaluator,
    mine: Iterable[int],
    versions: Mapping[str, tuple[str, int]],
    texts: PeerTexts | None = None,
) -> NodeSpan:
    """The span of the node whose pods are `mine` (pod indices); `texts` caches address
    groups across the nodes of one cluster."""
    texts = PeerTexts() if texts is None else texts
    pods = ev.cluster.pods
    mine = sorted(mine)
    span = NodeSpan(versions=dict(versions))
    rules: dict[str, list[SpanRule]] = defaultdict(list)
    infos: dict[str, PolicyInfo] = {}
    for pr in realize_pods(ev, mine):
        rule = pr.rule
        key = rule_key(rule) + (f"|{pr.split}" if pr.split else "")
        applied, peers = f"to:{key}", None
        span.applied_groups[applied] = frozenset(pods[i].key for i in pr.applied)
        if pr.peers is not None:
            peers = f"peers:{key}"
            span.address_groups[peers] = texts.of(rule.id, pr.split, pr.peers)
        pname = policy_name(rule.policy)
        infos[pname] = rule.policy
        rules[pname].append(
            SpanRule(
                key=key,
                direction=rule.direction,
                index=rule.index,
                name=rule.name,
                action=rule.action,
                action_text=rule.action_text,
                order=rule.order,
                logged=rule.logged,
                log_label=rule.log_label,
                applied_group=applied,
                address_group=peers,
                services=pr.services,
            )
        )
    isolates: dict[str, dict[Direction, set[str]]] = defaultdict(lambda: defaultdict(set))
    for direction in Direction:
        for i in mine:
            if pods[i].host_network:
                continue
            for info in ev.isolated_by(direction, i):
                pname = policy_name(info)
                infos.setdefault(pname, info)
                isolates[pname][direction].add(pods[i].key)
    logged = {policy_name(iso.policy) for iso in ev.policies.isolations if iso.logged}
    for pname, info in infos.items():
        groups = []
        for direction, isolated in sorted(isolates.get(pname, {}).items()):
            group = f"isolated:{pname}|{direction.value}"
            span.applied_groups[group] = frozenset(isolated)
            groups.append((direction, group))
        span.policies[pname] = SpanPolicy(
            name=pname,
            info=info,
            rules=tuple(rules[pname]),
            isolates=tuple(groups),
            log_isolation=pname in logged and bool(groups),
        )
    return span


# --- wire form ----------------------------------------------------------------------------


def _service_json(s: Service) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": s.protocol.value}
    if s.start is not None:
        out["port"] = s.start
    if s.end is not None and s.end != s.start:
        out["endPort"] = s.end
    if s.src_start is not None:
        out["sourcePort"] = s.src_start
        if s.src_end is not None and s.src_end != s.src_start:
            out["sourceEndPort"] = s.src_end
    return out


def _service(d: Mapping[str, Any]) -> Service:
    start = d.get("port")
    src = d.get("sourcePort")
    return Service(
        protocol=Protocol(d["protocol"]),
        start=start,
        end=d.get("endPort", start),
        src_start=src,
        src_end=d.get("sourceEndPort", src),
    )


def policy_json(p: SpanPolicy) -> dict[str, Any]:
    i = p.info
    return {
        "name": p.name,
        "source": {
            "kind": i.kind,
            "apiVersion": i.api_version,
            "namespace": i.namespace,
            "name": i.name,
            "tier": i.tier,
            "layer": int(i.layer),
            "priority": i.priority,
            "order": list(i.order),
        },
        "rules": [
            {
                "key": r.key,
                "direction": r.direction.value,
                "index": r.index,
                "name": r.name,
                "action": r.action.value,
                "actionText": r.action_text,
                "order": list(r.order),
                "logged": r.logged,
                "logLabel": r.log_label,
                "appliedToGroup": r.applied_group,
                "addressGroup": r.address_group,
                "services": None if r.services is None else [_service_json(s) for s in r.services],
            }
            for r in p.rules
        ],
        "isolates": {d.value: group for d, group in p.isolates},
        "logIsolation": p.log_isolation,
    }


def parse_policy(d: Mapping[str, Any]) -> SpanPolicy:
    s = d["source"]
    info = PolicyInfo(
        kind=s["kind"],
        api_version=s["apiVersion"],
        namespace=s["namespace"],
        name=s["name"],
        tier=s["tier"],
        layer=Layer(s["layer"]),
        priority=s["priority"],
        order=tuple(s["order"]),
    )
    rules = tuple(
        SpanRule(
            key=r["key"],
            direction=Direction(r["direction"]),
            index=r["index"],
            name=r["name"],
            action=Action(r["action"]),
            action_text=r["actionText"],
            order=tuple(r["order"]),
            logged=r["logged"],
            log_label=r["logLabel"],
            applied_group=r["appliedToGroup"],
            address_group=r["addressGroup"],
            services=None if r["services"] is None else tuple(_service(x) for x in r["services"]),
        )
        for r in d["rules"]
    )
    isolates = tuple((Direction(k), v) for k, v in d.get("isolates", {}).items())
    return SpanPolicy(
        name=d["name"],
        info=info,
        rules=rules,
        isolates=isolates,
        log_isolation=bool(d.get("logIsolation", False)),
    )


def span_json(span: NodeSpan) -> dict[str, Any]:
    return {
        "policies": [policy_json(p) for _, p in sorted(span.policies.items())],
        "appliedToGroups": {k: sorted(v) for k, v in sorted(span.applied_groups.items())},
        "addressGroups": {k: sorted(v) for k, v in sorted(span.address_groups.items())},
        "versions": {k: list(v) for k, v in sorted(span.versions.items())},
    }


def parse_span(d: Mapping[str, Any]) -> NodeSpan:
    policies = [parse_policy(p) for p in d["policies"]]
    return NodeSpan(
        policies={p.name: p for p in policies},
        applied_groups={k: frozenset(v) for k, v in d["appliedToGroups"].items()},
        address_groups={k: frozenset(v) for k, v in d["addressGroups"].items()},
        versions={k: (v[0], int(v[1])) for k, v in d["versions"].items()},
    )


# --- incremental updates ------------------------------------------------------------------


def _group_events(
    kind: str, old: Mapping[str, frozenset[str]], new: Mapping[str, frozenset[str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(additions and changes, deletions) of one kind of group."""
    upserts, deletes = [], []
    for name, members in sorted(new.items()):
        was = old.get(name)
        if was is None:
            upserts.append({"op": "add", "kind": kind, "name": name, "members": sorted(members)})
        elif was != members:
            upserts.append(
                {
                    "op": "modify",
                    "kind": kind,
                    "name": name,
                    "added": sorted(members - was),
                    "removed": sorted(was - members),
                }
            )
    for name in sorted(old.keys() - new.keys()):
        deletes.append({"op": "delete", "kind": kind, "name": name})
    return upserts, deletes


def diff(old: NodeSpan, new: NodeSpan) -> dict[str, Any] | None:
    """The update that turns `old` into `new`, or None when they are equal. Groups are
    added before the policies that use them and deleted after the policies that used them,
    so an agent applying events one by one never sees a rule with a missing group."""
    applied_up, applied_del = _group_events(APPLIED_GROUP, old.applied_groups, new.applied_groups)
    address_up, address_del = _group_events(ADDRESS_GROUP, old.address_groups, new.address_groups)
    policies: list[dict[str, Any]] = []
    for name, p in sorted(new.policies.items()):
        was = old.policies.get(name)
        if was != p:
            op = "add" if was is None else "modify"
            policies.append({"op": op, "kind": POLICY, "name": name, "policy": policy_json(p)})
    for name in sorted(old.policies.keys() - new.policies.keys()):
        policies.append({"op": "delete", "kind": POLICY, "name": name})
    versions: dict[str, list[Any] | None] = {
        k: list(v) for k, v in new.versions.items() if old.versions.get(k) != v
    }
    versions.update({k: None for k in old.versions.keys() - new.versions.keys()})
    events = applied_up + address_up + policies + applied_del + address_del
    if not events and not versions:
        return None
    return {"events": events, "versions": dict(sorted(versions.items()))}


def apply(span: NodeSpan, update: Mapping[str, Any]) -> None:
    """Apply an update made by `diff` to `span` in place. A modify of a group the span does
    not hold is an error (the stream lost an event): the caller must resync."""
    for ev in update.get("events", ()):
        op, kind, name = ev["op"], ev["kind"], ev["name"]
        if kind == POLICY:
            if op == "delete":
                span.policies.pop(name, None)
            else:
                span.policies[name] = parse_policy(ev["policy"])
            continue
        groups = span.applied_groups if kind == APPLIED_GROUP else span.address_groups
        if kind not in (APPLIED_GROUP, ADDRESS_GROUP):
            raise ValueError(f"update names an unknown kind {kind!r}")
        if op == "add":
            groups[name] = frozenset(ev["members"])
        elif op == "modify":
            if name not in groups:
                raise KeyError(f"{kind} {name} modified but never added")
            groups[name] = (groups[name] - frozenset(ev["removed"])) | frozenset(ev["added"])
        elif op == "delete":
            groups.pop(name, None)
        else:
            raise ValueError(f"update has an unknown op {op!r}")
    for key, v in update.get("versions", {}).items():
        if v is None:
            span.versions.pop(key, None)
        else:
            span.versions[key] = (v[0], int(v[1]))


# --- to flows -----------------------------------------------------------------------------


class _Blocks(dict[str, IPBlock]):
    """Address group members as IPBlocks, parsed once (forgotten wholesale when large)."""

    LIMIT = 1 << 20

    def parse(self, text: str) -> IPBlock:
        if len(self) >= self.LIMIT:
            self.clear()
        block = self[text] = parse_block(text)
        return block


class RuleIds:
    """Numbers for rule keys, as flows need them (cookies, conj_ids, packet-in userdata).

    A key keeps its number while it is in use and a while after. Keys out of use are
    forgotten once they outnumber the ones in use (`settle`), so memory follows the rules
    there are, not all there ever were; numbers keep counting up and wrap around only after
    MAX_RULE_ID, skipping those held, so a number read from a packet-in names the rule
    whose flow sent it unless that flow is some four million rules old.
    """

    SLACK = 1024  # forgotten keys are kept until they outnumber 2 x used + SLACK

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self._held: set[int] = set()
        self._next = 1
        self._rules: dict[int, Rule] = {}
        self.blocks = _Blocks()  # address texts parsed, shared by every call

    def id(self, key: str) -> int:
        found = self._ids.get(key)
        if found is None:
            found = self._allocate()
            self._ids[key] = found
            self._held.add(found)
        return found

    def _allocate(self) -> int:
        for _ in range(2):
            while self._next <= MAX_RULE_ID:
                n = self._next
                self._next += 1
                if n not in self._held:
                    return n
            self._next = 1  # wrap around, past the numbers still held
        raise ValueError(f"more than {MAX_RULE_ID} rules on one node")

    def settle(self, used: set[int]) -> None:
        """After a node_policy: forget keys out of use once there are many of them."""
        if len(self._ids) <= 2 * len(used) + self.SLACK:
            return
        self._ids = {k: v for k, v in self._ids.items() if v in used}
        self._held = set(self._ids.values())
        self._rules = {i: r for i, r in self._rules.items() if i in used}

    def remember(self, rule_id: int, rule: Rule) -> None:
        self._rules[rule_id] = rule

    def rule(self, rule_id: int) -> Rule | None:
        return self._rules.get(rule_id)


def node_policy(span: NodeSpan, ofports: Mapping[str, int], ids: RuleIds) -> NodePolicy:
    """The node's policy for the pods that have OVS ports (`ofports`: "ns/name" -> ofport).
    A rule whose protected pods have no port yet realizes nothing."""
    blocks = ids.blocks
    used: set[int] = set()
    group_peers: dict[frozenset[str], tuple[IPBlock, ...]] = {}

    def ports(group: str | None) -> frozenset[int]:
        members = span.applied_groups.get(group or "", frozenset())
        return frozenset(ofports[k] for k in members if k in ofports)

    rules: list[RealizedRule] = []
    for p in span.policies.values():
        for r in p.rules:
            applied = ports(r.applied_group)
            if not applied:
                continue
            peers = None
            if r.address_group is not None:
                # One tuple per distinct member set (the flow builder collapses each
                # distinct tuple once; many groups hold the same addresses).
                members = span.address_groups.get(r.address_group, frozenset())
                peers = group_peers.get(members)
                if peers is None:
                    peers = tuple(blocks.get(b) or blocks.parse(b) for b in sorted(members))
                    group_peers[members] = peers
            rule_id = ids.id(r.key)
            used.add(rule_id)
            ids.remember(rule_id, span_rule_model(p, r, rule_id))
            rules.append(
                RealizedRule(
                    rule_id=rule_id,
                    direction=r.direction,
                    layer=p.info.layer,
                    order=r.order,
                    action=r.action,
                    applied=applied,
                    peers=peers,
                    services=r.services,
                    logged=r.logged,
                )
            )
    # Which policies isolate each port, and whether any of them asks for logging.
    isolating: dict[tuple[Direction, str], list[SpanPolicy]] = defaultdict(list)
    for p in span.policies.values():
        for direction, group in p.isolates:
            for member in span.applied_groups.get(group, frozenset()):
                if member in ofports:
                    isolating[(direction, member)].append(p)
    logged = set()
    for (direction, member), policies in sorted(isolating.items()):
        if any(p.log_isolation for p in policies):
            rule_id = ids.id(f"isolation|{direction.value}|{member}")
            used.add(rule_id)
            ids.remember(rule_id, isolation_model(policies, direction, rule_id))
            logged.add((direction, ofports[member], rule_id))
    ids.settle(used)
    return NodePolicy(
        rules=tuple(sorted(rules, key=lambda r: r.rule_id)),
        isolated_egress=frozenset(ofports[m] for d, m in isolating if d is Direction.EGRESS),
        isolated_ingress=frozenset(ofports[m] for d, m in isolating if d is Direction.INGRESS),
        logged_isolation=frozenset(logged),
    )


ISOLATION_RULE = "isolation"  # the rule name audit lines give an isolation drop


def isolation_model(policies: list[SpanPolicy], direction: Direction, rule_id: int) -> Rule:
    """The isolation of one pod as a rule the audit log can name: the NetworkPolicies
    that isolate it (one namespace: the pod's), as NAMESPACE/NAME1,NAME2."""
    first = policies[0].info
    info = PolicyInfo(
        kind=first.kind,
        api_version=first.api_version,
        namespace=first.namespace,
        name=",".join(sorted(p.info.name for p in policies)),
        tier=first.tier,
        layer=first.layer,
        priority=None,
        order=first.order,
    )
    return Rule(
        id=rule_id,
        policy=info,
        direction=direction,
        index=0,
        name=ISOLATION_RULE,
        action=Action.DROP,
        action_text="Drop",
        applied_to=(),
        peers=None,
        ports=None,
        logged=True,
    )


def span_rule_model(p: SpanPolicy, r: SpanRule, rule_id: int) -> Rule:
    """The rule as the policy model knows it (what the audit log names), without its
    selectors: the controller kept those."""
    return Rule(
        id=rule_id,
        policy=p.info,
        direction=r.direction,
        index=r.index,
        name=r.name,
        action=r.action,
        action_text=r.action_text,
        applied_to=(),
        peers=None,
        ports=None,
        logged=r.logged,
        log_label=r.log_label,
    )
