"""Explanations: a Decision as JSON and as text a person reads."""

from __future__ import annotations

from typing import Any

from fyke.policy.evaluate import Decision, SideDecision
from fyke.policy.model import Action


def side_json(side: SideDecision) -> dict[str, Any]:
    out: dict[str, Any] = {
        "verdict": side.verdict.value,
        "policy": side.rule.policy.to_json() if side.rule else None,
        "rule": side.rule.to_json() if side.rule else None,
    }
    if not side.applies:
        out["reason"] = "not-a-pod"
    elif side.rule is not None:
        out["reason"] = "rule"
    elif side.isolated_by:
        out["reason"] = "isolated"
    else:
        out["reason"] = "no-rule"
    if side.isolated_by:
        out["isolatedBy"] = [p.to_json() for p in side.isolated_by]
    if side.passed:
        out["passedBy"] = [{"policy": r.policy.to_json(), "rule": r.to_json()} for r in side.passed]
    return out


def decision_json(d: Decision, src: str, dst: str, port: str) -> dict[str, Any]:
    return {
        "from": src,
        "to": dst,
        "port": port,
        "verdict": d.verdict.value,
        "egress": side_json(d.egress),
        "ingress": side_json(d.ingress),
    }


def _side_text(side: SideDecision, who: str) -> str:
    if not side.applies:
        return f"{side.verdict.value}: {who} is not a pod; no policy applies"
    passed = ""
    if side.passed:
        passed = "; passed by " + ", ".join(
            f"{r.policy} rule {_rule_name(side, i)}" for i, r in enumerate(side.passed)
        )
    if side.rule is not None:
        r = side.rule
        return (
            f"{side.verdict.value}: {r.policy} (tier {r.policy.tier}) "
            f"{r.direction.value.lower()} rule {r.index}"
            f"{f' {r.name!r}' if r.name else ''} action {r.action_text}{passed}"
        )
    if side.isolated_by:
        names = ", ".join(str(p) for p in side.isolated_by)
        return (
            f"{side.verdict.value}: {who} is isolated for {side.direction.value.lower()} by "
            f"{names} and no rule allows this connection{passed}"
        )
    return (
        f"{side.verdict.value}: no rule matches and nothing isolates {who} for "
        f"{side.direction.value.lower()}{passed}"
    )


def _rule_name(side: SideDecision, i: int) -> str:
    r = side.passed[i]
    return f"{r.index}{f' {r.name!r}' if r.name else ''}"


def decision_text(d: Decision, src: str, dst: str, port: str) -> str:
    verdict = d.verdict.value.upper()
    lines = [
        f"{src} -> {dst} {port}: {verdict}",
        f"  egress  at {src}: {_side_text(d.egress, src)}",
        f"  ingress at {dst}: {_side_text(d.ingress, dst)}",
    ]
    if d.verdict is not Action.ALLOW and d.egress.verdict is not Action.ALLOW:
        lines.append("  (the egress side decides: the packet never reaches the destination)")
    return "\n".join(lines)
