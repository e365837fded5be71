"""Antrea `sourcePort`/`sourceEndPort`: a rule matches clients whose port is in the range.

A connection's client port comes from Linux's ephemeral range (32768-60999: the lab's
pods and the upstream e2e probes use it). Offline, a source range that holds that whole
range matches every connection, one that misses it matches none, and one that holds only
part of it matches none too, with a warning (real connections would match by the port
they happen to get). Upstream testACNPSourcePort uses 32768-60999.
"""

from __future__ import annotations

from tests.unit.scenarios._harness import Truth, check_matrix, manifest, on_ports, run_with_input
from tests.unit.scenarios.test_antrea_tiers import acnp


def drop_from_x_b(ports: str) -> str:
    return acnp(
        "acnp-source-port",
        1,
        f"""
        appliedTo:
        - namespaceSelector: {{matchLabels: {{ns: y}}}}
        ingress:
        - action: Drop
          from:
          - namespaceSelector: {{matchLabels: {{ns: x}}}}
            podSelector: {{matchLabels: {{pod: b}}}}
          ports: {ports}
        """,
    )


def test_a_range_holding_every_client_port_matches() -> None:
    policy = drop_from_x_b("[{protocol: TCP, port: 80, sourcePort: 32768, sourceEndPort: 60999}]")
    check_matrix(
        [policy],
        {"80/TCP": Truth().drop("x/b", "y/*"), "81/TCP": Truth(), "80/UDP": Truth()},
    )


def test_a_range_of_no_client_port_matches_nothing() -> None:
    policy = drop_from_x_b("[{protocol: TCP, sourcePort: 1000, sourceEndPort: 2000}]")
    check_matrix([policy], on_ports(Truth(), "80/TCP", "81/TCP"))


def test_a_range_of_some_client_ports_matches_nothing_with_a_warning() -> None:
    policy = drop_from_x_b("[{protocol: TCP, port: 80, sourcePort: 40000, sourceEndPort: 50000}]")
    check_matrix([policy], on_ports(Truth(), "80/TCP"))
    rc, _, err = run_with_input(manifest([policy]), "matrix", ["--port", "80/TCP"])
    assert rc == 0
    assert "port 80/TCP from port 40000-50000" in err and "only some of the client ports" in err


def test_source_end_port_needs_a_source_port_below_it() -> None:
    for ports, message in (
        ("[{protocol: TCP, sourceEndPort: 2000}]", "sourceEndPort: requires sourcePort"),
        (
            "[{protocol: TCP, sourcePort: 3000, sourceEndPort: 2000}]",
            "sourceEndPort: must be >= sourcePort (3000)",
        ),
        ("[{protocol: TCP, sourcePort: 70000}]", "sourcePort: must be <= 65535"),
    ):
        rc, _, err = run_with_input(manifest([drop_from_x_b(ports)]), "matrix", [])
        assert rc == 1, ports
        assert "ClusterNetworkPolicy acnp-source-port" in err and message in err, err
