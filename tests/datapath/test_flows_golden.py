"""Golden text of the pod-connectivity flows, with symbolic table names."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fyke.datapath import tables
from fyke.datapath.fields import (
    FEATURE_MASK,
    Feature,
    cookie_feature,
    cookie_object,
    cookie_round,
    make_cookie,
)
from fyke.datapath.flow import Drop, Flow, Goto, render
from fyke.datapath.pod import (
    Gateway,
    PodPort,
    gateway_flows,
    pipeline_flows,
    pod_connectivity,
    pod_flows,
)

GW = Gateway(ofport=2, ip="10.10.0.1", mac="02:00:00:00:00:01")
POD = PodPort(ofport=3, name="fyke-t-a", ip="10.10.0.2", mac="02:00:00:00:00:02")


def golden(flows: list[Flow]) -> str:
    return "\n".join(render(f, symbolic=True) for f in flows)


def test_gateway_flows() -> None:
    assert golden(gateway_flows(GW, round=1)) == "\n".join(
        [
            "cookie=0x1020000000000, table=Classifier, priority=200,in_port=2"
            " actions=set_field:0x1/0xf->reg0,goto_table:SpoofGuard",
            "cookie=0x1020000000000, table=SpoofGuard, priority=200,in_port=2,ip"
            " actions=goto_table:ConntrackZone",
            "cookie=0x1020000000000, table=SpoofGuard, priority=200,in_port=2,arp"
            " actions=goto_table:ARPResponder",
            "cookie=0x1020000000000, table=ARPResponder, priority=200,arp,arp_op=1,"
            "arp_tpa=10.10.0.1,reg0=0x2/0xf actions=move:eth_src->eth_dst,"
            "set_field:02:00:00:00:00:01->eth_src,set_field:2->arp_op,move:arp_sha->arp_tha,"
            "set_field:02:00:00:00:00:01->arp_sha,move:arp_spa->arp_tpa,"
            "set_field:10.10.0.1->arp_spa,IN_PORT",
            "cookie=0x1020000000000, table=L3Forwarding, priority=190,ip"
            " actions=set_field:02:00:00:00:00:01->eth_dst,goto_table:L2ForwardingCalc",
            "cookie=0x1020000000000, table=L2ForwardingCalc, priority=200,dl_dst=02:00:00:00:00:01"
            " actions=set_field:0x2->reg1,set_field:0x100/0x100->reg0,goto_table:TierPolicyIngress",
        ]
    )


def test_pod_flows() -> None:
    assert golden(pod_flows(POD, round=7)) == "\n".join(
        [
            "cookie=0x7030000000003, table=Classifier, priority=190,in_port=3"
            " actions=set_field:0x2/0xf->reg0,goto_table:SpoofGuard",
            "cookie=0x7030000000003, table=SpoofGuard, priority=200,in_port=3,ip,"
            "dl_src=02:00:00:00:00:02,nw_src=10.10.0.2 actions=goto_table:ConntrackZone",
            "cookie=0x7030000000003, table=SpoofGuard, priority=200,in_port=3,arp,"
            "dl_src=02:00:00:00:00:02,arp_spa=10.10.0.2,arp_sha=02:00:00:00:00:02"
            " actions=goto_table:ARPResponder",
            "cookie=0x7030000000003, table=ARPResponder, priority=200,arp,arp_op=1,"
            "arp_tpa=10.10.0.2 actions=move:eth_src->eth_dst,"
            "set_field:02:00:00:00:00:02->eth_src,set_field:2->arp_op,move:arp_sha->arp_tha,"
            "set_field:02:00:00:00:00:02->arp_sha,move:arp_spa->arp_tpa,"
            "set_field:10.10.0.2->arp_spa,IN_PORT",
            "cookie=0x7030000000003, table=L3Forwarding, priority=200,ip,nw_dst=10.10.0.2"
            " actions=set_field:02:00:00:00:00:02->eth_dst,goto_table:L2ForwardingCalc",
            "cookie=0x7030000000003, table=L2ForwardingCalc, priority=200,dl_dst=02:00:00:00:00:02"
            " actions=set_field:0x3->reg1,set_field:0x100/0x100->reg0,goto_table:TierPolicyIngress",
        ]
    )


def test_pipeline_flows() -> None:
    assert golden(pipeline_flows(round=1)) == "\n".join(
        "cookie=0x1010000000000, " + line
        for line in [
            "table=Classifier, priority=0 actions=drop",
            "table=SpoofGuard, priority=0 actions=drop",
            "table=ARPResponder, priority=0 actions=goto_table:L2ForwardingCalc",
            "table=ConntrackZone, priority=200,ip actions=ct(table=ConntrackState,zone=65520)",
            "table=ConntrackZone, priority=0 actions=drop",
            "table=ConntrackState, priority=210,ip,ct_state=+inv+trk actions=drop",
            "table=ConntrackState, priority=200,ip,ct_state=-new+trk"
            " actions=goto_table:L3Forwarding",
            "table=ConntrackState, priority=0 actions=goto_table:SessionAffinity",
            "table=SessionAffinity, priority=0 actions=goto_table:ServiceLB",
            "table=ServiceLB, priority=0 actions=goto_table:EndpointDNAT",
            "table=EndpointDNAT, priority=0 actions=goto_table:TierPolicyEgress",
            "table=TierPolicyEgress, priority=0 actions=goto_table:EgressRule",
            "table=EgressRule, priority=0 actions=goto_table:EgressDefault",
            "table=EgressDefault, priority=0 actions=goto_table:L3Forwarding",
            "table=L3Forwarding, priority=0 actions=goto_table:L2ForwardingCalc",
            "table=L2ForwardingCalc, priority=0 actions=drop",
            "table=TierPolicyIngress, priority=210,ip,ct_state=-new+trk"
            " actions=goto_table:ConntrackCommit",
            "table=TierPolicyIngress, priority=0 actions=goto_table:IngressRule",
            "table=IngressRule, priority=0 actions=goto_table:IngressDefault",
            "table=IngressDefault, priority=0 actions=goto_table:ConntrackCommit",
            "table=ConntrackCommit, priority=200,ip,ct_state=+new+trk"
            " actions=ct(commit,zone=65520),goto_table:Output",
            "table=ConntrackCommit, priority=0 actions=goto_table:Output",
            "table=Output, priority=200,reg0=0x100/0x100 actions=output:NXM_NX_REG1[]",
            "table=Output, priority=0 actions=drop",
        ]
    )


def test_every_table_has_a_default_flow() -> None:
    defaults = {f.table for f in pipeline_flows(round=0) if f.priority == 0 and not f.match}
    assert defaults == set(tables.PIPELINE)


def test_pipeline_order_and_ids() -> None:
    ids = [t.id for t in tables.PIPELINE]
    assert ids == sorted(ids)
    assert tables.next_table(tables.Classifier) is tables.SpoofGuard
    assert tables.by_name("EndpointDNAT").id == 32


def test_cookie_layout() -> None:
    c = make_cookie(round=0xBEEF, feature=Feature.POD, obj=0x12345)
    assert (cookie_round(c), cookie_feature(c), cookie_object(c)) == (0xBEEF, 3, 0x12345)
    assert c & FEATURE_MASK == make_cookie(round=0, feature=Feature.POD)


def test_flow_rejects_bad_actions() -> None:
    with pytest.raises(ValueError):
        Flow(table=tables.Output, priority=1, match=(), actions=(Drop(), Drop()), cookie=0)
    with pytest.raises(ValueError):
        Flow(
            table=tables.Output,
            priority=1,
            match=(),
            actions=(Goto(table=tables.Output), Drop()),
            cookie=0,
        )
    with pytest.raises(ValueError):
        Flow(table=tables.Output, priority=1, match=(("nope", 1),), actions=(), cookie=0)


@pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")
def test_rendered_text_parses_with_ovs_ofctl() -> None:
    """Numeric rendering is real ovs-ofctl syntax (so it can be pasted while debugging)."""
    for flow in pod_connectivity(GW, [POD], round=1):
        text = render(flow).replace(", ", ",")
        out = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow15", "parse-flow", text],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert out.returncode == 0, f"{text}: {out.stderr}"
