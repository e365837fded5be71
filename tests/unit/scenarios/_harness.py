"""Shared cluster and truth-table helpers for the upstream scenario tests.

The cluster is the one the upstream conformance suites use (Kubernetes e2e
netpol, Antrea e2e): three namespaces ``x``, ``y``, ``z`` labelled ``ns=<name>``
and three pods ``a``, ``b``, ``c`` in each, labelled ``pod=<name>``.  Every pod
serves ports 80 and 81 on TCP, UDP and SCTP, each through a named container
port ``serve-<port>-<protocol>`` (for example ``serve-80-tcp``), like the e2e
server pods.

Pod IPs are fixed so that ipBlock cases can name them: namespace ``x`` is
10.0.0.0/24, ``y`` is 10.0.1.0/24 and ``z`` is 10.0.2.0/24; pod ``a`` is .1,
``b`` is .2 and ``c`` is .3 (so ``y/b`` is 10.0.1.2).

Expectations are written as a :class:`Truth` table (a default verdict plus
overrides selected with glob patterns such as ``"x/*"``), or as a grid like the
one the e2e suites print.  On a mismatch the failure message shows a grid with
the wrong cells marked ``expected>actual`` and a list of the wrong pairs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import io
import json
import os
import tempfile
import textwrap
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import yaml

ALLOW = "allow"
DROP = "drop"
REJECT = "reject"

NAMESPACES = ("x", "y", "z")
POD_NAMES = ("a", "b", "c")
PODS = tuple(f"{ns}/{pod}" for ns in NAMESPACES for pod in POD_NAMES)
PROTOCOLS = ("TCP", "UDP", "SCTP")
SERVED_PORTS = (80, 81)

_SYMBOLS = {ALLOW: ".", DROP: "X", REJECT: "R"}
_VERDICTS = {symbol: verdict for verdict, symbol in _SYMBOLS.items()}


def pod_ip(pod: str) -> str:
    """The fixed IP of ``ns/name`` in the standard cluster."""
    ns, name = pod.split("/")
    return f"10.0.{NAMESPACES.index(ns)}.{POD_NAMES.index(name) + 1}"


def namespace_cidr(ns: str) -> str:
    """The /24 that holds every pod of namespace ``ns``."""
    return f"10.0.{NAMESPACES.index(ns)}.0/24"


# --------------------------------------------------------------------------- cluster


def cluster_docs(
    ns_labels: Mapping[str, Mapping[str, str]] | None = None,
    pod_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Namespace and Pod objects of the standard cluster.

    ``ns_labels`` replaces the labels of the named namespaces and ``pod_labels``
    those of the named pods (keys ``"x"`` and ``"x/a"``).  The evaluator is
    expected to add ``kubernetes.io/metadata.name`` to namespaces itself.
    """
    ns_labels = ns_labels or {}
    pod_labels = pod_labels or {}
    docs: list[dict[str, Any]] = []
    for ns in NAMESPACES:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": ns, "labels": dict(ns_labels.get(ns, {"ns": ns}))},
            }
        )
    for pod in PODS:
        ns, name = pod.split("/")
        containers = []
        for port in SERVED_PORTS:
            for protocol in PROTOCOLS:
                suffix = f"{port}-{protocol.lower()}"
                containers.append(
                    {
                        "name": f"cont-{suffix}",
                        "image": "registry.k8s.io/e2e-test-images/agnhost:2.53",
                        "ports": [
                            {
                                "name": f"serve-{suffix}",
                                "containerPort": port,
                                "protocol": protocol,
                            }
                        ],
                    }
                )
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": ns,
                    "labels": dict(pod_labels.get(pod, {"pod": name})),
                },
                "spec": {"containers": containers},
                "status": {"phase": "Running", "podIP": pod_ip(pod)},
            }
        )
    return docs


def manifest(
    policies: str | Sequence[str] = (),
    ns_labels: Mapping[str, Mapping[str, str]] | None = None,
    pod_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """The whole input file: the cluster followed by the policy documents."""
    if isinstance(policies, str):
        policies = [policies]
    parts = [yaml.safe_dump(doc, sort_keys=False) for doc in cluster_docs(ns_labels, pod_labels)]
    parts.extend(textwrap.dedent(p).strip() + "\n" for p in policies if p.strip())
    return "---\n".join(parts)


# --------------------------------------------------------------------------- CLI


def run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """Run ``fyke.cli.main.main`` in-process; return (exit code, stdout, stderr)."""
    from fyke.cli.main import main  # imported here so collection works without the CLI

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse-style exits
            code = exc.code
            rc = code if isinstance(code, int) else (0 if code is None else 1)
    return rc, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _input_file(text: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="fyke-scenario-") as tmp:
        path = os.path.join(tmp, "cluster.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        yield path


def run_with_input(text: str, command: str, args: Sequence[str]) -> tuple[int, str, str]:
    """Run ``fykectl policy <command> -f <file> <args>`` on a file holding ``text``."""
    with _input_file(text) as path:
        return run_cli(["policy", command, "-f", path, *args])


def run_matrix(
    policies: str | Sequence[str],
    ports: Sequence[str],
    ns_labels: Mapping[str, Mapping[str, str]] | None = None,
    pod_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """``fykectl policy matrix`` on the standard cluster plus ``policies``."""
    args: list[str] = []
    for port in ports:
        args += ["--port", port]
    args += ["-o", "json"]
    rc, out, err = run_with_input(manifest(policies, ns_labels, pod_labels), "matrix", args)
    assert rc == 0, f"policy matrix exited {rc}\nstdout:\n{out}\nstderr:\n{err}"
    result: dict[str, Any] = json.loads(out)
    return result


def explain(
    policies: str | Sequence[str],
    src: str,
    dst: str,
    port: str,
    ns_labels: Mapping[str, Mapping[str, str]] | None = None,
    pod_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """``fykectl policy explain`` for one connection."""
    args = ["--from", src, "--to", dst, "--port", port, "-o", "json"]
    rc, out, err = run_with_input(manifest(policies, ns_labels, pod_labels), "explain", args)
    assert rc == 0, f"policy explain exited {rc}\nstdout:\n{out}\nstderr:\n{err}"
    result: dict[str, Any] = json.loads(out)
    return result


# --------------------------------------------------------------------------- truth tables


def _selects(pattern: str | Iterable[str], pod: str) -> bool:
    if isinstance(pattern, str):
        return fnmatch.fnmatchcase(pod, pattern)
    return any(fnmatch.fnmatchcase(pod, p) for p in pattern)


class Truth:
    """Expected verdict for every ordered pair of distinct pods on one port.

    Start from a default and override with glob patterns; later calls win::

        Truth().drop("*", "x/a").allow("x/b", "x/a")
    """

    def __init__(self, default: str = ALLOW) -> None:
        self.cells: dict[tuple[str, str], str] = {
            (s, d): default for s in PODS for d in PODS if s != d
        }

    def set(self, src: str | Iterable[str], dst: str | Iterable[str], verdict: str) -> Truth:
        assert verdict in _SYMBOLS, verdict
        for s, d in self.cells:
            if _selects(src, s) and _selects(dst, d):
                self.cells[(s, d)] = verdict
        return self

    def allow(self, src: str | Iterable[str], dst: str | Iterable[str]) -> Truth:
        return self.set(src, dst, ALLOW)

    def drop(self, src: str | Iterable[str], dst: str | Iterable[str]) -> Truth:
        return self.set(src, dst, DROP)

    def reject(self, src: str | Iterable[str], dst: str | Iterable[str]) -> Truth:
        return self.set(src, dst, REJECT)

    def same_namespace(self, verdict: str) -> Truth:
        """Set every pair whose two pods share a namespace."""
        for s, d in self.cells:
            if s.split("/")[0] == d.split("/")[0]:
                self.cells[(s, d)] = verdict
        return self

    def copy(self) -> Truth:
        other = Truth()
        other.cells = dict(self.cells)
        return other

    @classmethod
    def grid(cls, text: str) -> Truth:
        """Parse a reachability grid: rows are sources, columns destinations.

        The first line names the destination pods; every other line starts with
        the source pod.  ``.`` is allow, ``X`` drop, ``R`` reject, and ``-``
        marks the (ignored) pod-to-itself cell.
        """
        lines = [ln.split() for ln in textwrap.dedent(text).strip().splitlines() if ln.strip()]
        header, rows = lines[0], lines[1:]
        assert sorted(header) == sorted(PODS), f"grid header must name all pods: {header}"
        assert sorted(r[0] for r in rows) == sorted(PODS), "grid must have one row per pod"
        truth = cls()
        for row in rows:
            src, symbols = row[0], row[1:]
            assert len(symbols) == len(header), f"row {src} has {len(symbols)} cells"
            for dst, symbol in zip(header, symbols, strict=True):
                if src == dst:
                    assert symbol == "-", f"self cell {src} must be '-'"
                    continue
                truth.cells[(src, dst)] = _VERDICTS[symbol]
        return truth


def on_ports(truth: Truth, *ports: str) -> dict[str, Truth]:
    """The same expectation on several ports."""
    return {port: truth for port in ports}


def render(expected: Truth, actual: Mapping[tuple[str, str], str | None]) -> str:
    """A grid of ``actual`` with wrong cells written ``expected>actual``."""
    width = 5
    lines = ["from\\to".ljust(width + 2) + "".join(d.rjust(width) for d in PODS)]
    for s in PODS:
        cells = []
        for d in PODS:
            if s == d:
                cells.append("-".rjust(width))
                continue
            want = _SYMBOLS[expected.cells[(s, d)]]
            got_verdict = actual.get((s, d))
            got = _SYMBOLS.get(got_verdict or "", "?")
            cells.append((got if got == want else f"{want}>{got}").rjust(width))
        lines.append(s.ljust(width + 2) + "".join(cells))
    lines.append("legend: . allow  X drop  R reject  ? missing  E>A expected E, got A")
    return "\n".join(lines)


def check_matrix(
    policies: str | Sequence[str],
    expected: Mapping[str, Truth],
    ns_labels: Mapping[str, Mapping[str, str]] | None = None,
    pod_labels: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Run the matrix for ``expected``'s ports and compare it cell by cell."""
    ports = list(expected)
    result = run_matrix(policies, ports, ns_labels, pod_labels)
    problems: list[str] = []
    if result.get("ports") != ports:
        problems.append(f"ports: expected {ports}, got {result.get('ports')}")
    if sorted(result.get("pods", [])) != sorted(PODS):
        problems.append(f"pods: expected {sorted(PODS)}, got {result.get('pods')}")
    matrix = result.get("matrix", {})
    for port, truth in expected.items():
        actual: dict[tuple[str, str], str | None] = {}
        for s, d in truth.cells:
            actual[(s, d)] = matrix.get(s, {}).get(d, {}).get(port)
        wrong = [
            f"  {s} -> {d}: expected {truth.cells[(s, d)]}, got {actual[(s, d)]}"
            for (s, d) in truth.cells
            if actual[(s, d)] != truth.cells[(s, d)]
        ]
        if wrong:
            problems.append(
                f"port {port}: {len(wrong)} wrong\n{render(truth, actual)}\n" + "\n".join(wrong)
            )
    if problems:
        raise AssertionError("truth table mismatch\n" + "\n".join(problems))


def check_decision(
    result: Mapping[str, Any],
    direction: str,
    *,
    verdict: str | None = None,
    name: str | None = None,
    namespace: str | None = None,
    kind_contains: str | None = None,
    tier: str | None = None,
    rule_index: int | None = None,
    rule_action: str | None = None,
) -> None:
    """Check the ``egress`` or ``ingress`` half of an explain result.

    Only the given fields are checked; tier and rule action compare
    case-insensitively, the kind by substring (an engine may say
    ``ClusterNetworkPolicy`` or ``AntreaClusterNetworkPolicy``).
    """
    part = result.get(direction)
    assert isinstance(part, Mapping), f"explain has no {direction} part: {result}"
    if verdict is not None:
        assert part.get("verdict") == verdict, f"{direction} verdict: {part}"
    policy = part.get("policy")
    if any(v is not None for v in (name, namespace, kind_contains, tier)):
        assert isinstance(policy, Mapping), f"{direction} names no policy: {part}"
        if name is not None:
            assert policy.get("name") == name, f"{direction} policy: {policy}"
        if namespace is not None:
            assert policy.get("namespace") == namespace, f"{direction} policy: {policy}"
        if kind_contains is not None:
            assert kind_contains in str(policy.get("kind")), f"{direction} policy: {policy}"
        if tier is not None:
            assert str(policy.get("tier")).lower() == tier.lower(), f"{direction} policy: {policy}"
    rule = part.get("rule")
    if rule_index is not None or rule_action is not None:
        assert isinstance(rule, Mapping), f"{direction} names no rule: {part}"
        if rule_index is not None:
            assert rule.get("index") == rule_index, f"{direction} rule: {rule}"
        if rule_action is not None:
            got = str(rule.get("action")).lower()
            assert got == rule_action.lower(), f"{direction} rule: {rule}"
