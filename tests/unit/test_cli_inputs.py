"""fykectl input handling: -f and --port lists, manifest files and directories, JSON
streams, duplicate ports, pod order, and a closed output pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fyke.api.errors import ValidationError
from fyke.api.load import documents
from fyke.cli.main import build_parser, main
from fyke.lab.up import manifests


def _pod(ns: str, name: str, ip: str) -> str:
    return f"""---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {ns}, labels: {{pod: {name}}}}}
status: {{podIP: {ip}}}
"""


# z/a deny-all ingress: x/b -> z/a drops, everything else is allowed.
PODS = _pod("z", "a", "10.0.0.1") + _pod("x", "b", "10.0.0.2") + _pod("x", "a", "10.0.0.3")
DENY = """
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: z}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""
SORTED = ["x/a", "x/b", "z/a"]


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(PODS)
    b.write_text(DENY)
    return str(a), str(b)


def _f(files: tuple[str, ...]) -> list[str]:
    """-f once per file, as every fykectl version takes them."""
    return [arg for f in files for arg in ("-f", f)]


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "args",
    [
        ["-f", "{a}", "{b}", "--port", "80/TCP", "81/UDP"],
        ["-f", "{a}", "-f", "{b}", "--port", "80/TCP", "--port", "81/UDP"],
        ["-f", "{a}", "--port", "80/TCP", "-f", "{b}", "--port", "81/UDP"],
    ],
)
def test_matrix_takes_several_files_and_ports_per_flag(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    a, b = files
    argv = [x.format(a=a, b=b) for x in args]
    out = _json(capsys, "policy", "matrix", *argv, "-o", "json")
    assert out["ports"] == ["80/TCP", "81/UDP"]
    assert out["matrix"]["x/b"]["z/a"] == {"80/TCP": "drop", "81/UDP": "drop"}


def test_matrix_default_port_kept(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _json(capsys, "policy", "matrix", *_f(files), "-o", "json")
    assert out["ports"] == ["80/TCP"]


def test_explain_takes_several_files_per_flag(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = _json(
        capsys, "policy", "explain", "-f", *files, "--from", "x/b", "--to", "z/a", "-o", "json"
    )
    assert out["verdict"] == "drop"
    args = build_parser().parse_args(
        ["policy", "explain", "-f", "a", "--from", "x/a", "--to", "x/b"]
    )
    assert args.port == "80/TCP"


@pytest.mark.parametrize("verb", ["apply", "delete"])
def test_lab_apply_delete_take_several_files_per_flag(verb: str) -> None:
    args = build_parser().parse_args(["lab", verb, "-f", "a.yaml", "b.yaml", "-f", "c/"])
    assert args.filename == ["a.yaml", "b.yaml", "c/"]


def test_lab_probe_takes_several_ports_per_flag() -> None:
    parse = build_parser().parse_args
    assert parse(["lab", "probe", "--port", "80/TCP", "81/UDP", "--port", "82"]).port == [
        "80/TCP",
        "81/UDP",
        "82",
    ]
    assert parse(["lab", "probe"]).port == []


def test_matrix_duplicate_ports_once(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ports = ["81/udp", "80/tcp", "80/TCP", "80", "81/UDP"]
    argv = [arg for p in ports for arg in ("--port", p)]
    out = _json(capsys, "policy", "matrix", *_f(files), *argv, "-o", "json")
    assert out["ports"] == ["81/UDP", "80/TCP"]
    assert list(out["matrix"]["x/a"]["x/b"]) == ["81/UDP", "80/TCP"]


def test_matrix_pods_sorted_by_namespace_then_name(
    files: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in ([], ["--all-ports"]):
        out = _json(capsys, "policy", "matrix", *_f(files), *extra, "-o", "json")
        assert out["pods"] == SORTED
        assert list(out["matrix"]) == SORTED
        for src, row in out["matrix"].items():
            assert list(row) == [p for p in SORTED if p != src]
    capsys.readouterr()
    assert main(["policy", "matrix", *_f(files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == SORTED
    assert [line.split()[0] for line in lines[2:]] == SORTED


def test_matrix_pod_order_is_the_api_servers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The lab API server sorts (namespace, name) tuples: "a" before "a-b", though
    # "a-b/x" < "a/x" as strings.
    path = tmp_path / "p.yaml"
    path.write_text(_pod("a-b", "x", "10.0.0.1") + _pod("a", "x", "10.0.0.2"))
    out = _json(capsys, "policy", "matrix", "-f", str(path), "-o", "json")
    assert out["pods"] == ["a/x", "a-b/x"]


class _Client:
    async def close(self) -> None:
        pass


def test_lab_probe_ports_once_and_pods_sorted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from fyke.cli import lab
    from fyke.lab import objects, probe

    def pod(ns: str, name: str) -> dict[str, Any]:
        return {
            "metadata": {"namespace": ns, "name": name},
            "status": {"phase": "Running", "podIP": "10.0.0.1"},
        }

    async def pods(c: Any) -> list[dict[str, Any]]:
        return [pod("z", "a"), pod("a-b", "x"), pod("a", "x")]

    seen: dict[str, Any] = {}

    async def fake_probe(pods: list[Any], ports: list[tuple[int, str]], timeout: float) -> Any:
        seen["pods"] = [f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in pods]
        seen["ports"] = ports
        return {"ports": [], "pods": seen["pods"], "matrix": {}}

    monkeypatch.setattr(lab, "_kubeconfig", lambda args: "kubeconfig")
    monkeypatch.setattr(objects, "client", lambda kubeconfig: _Client())
    monkeypatch.setattr(objects, "pods", pods)
    monkeypatch.setattr(probe, "probe", fake_probe)
    argv = ["lab", "probe", "--port", "80/tcp", "--port", "81/UDP", "--port", "80/TCP"]
    assert main(argv) == 0
    assert seen["ports"] == [(80, "TCP"), (81, "UDP")]
    assert seen["pods"] == ["a/x", "a-b/x", "z/a"]


# --- reading manifests -----------------------------------------------------------------


def test_json_stream_is_several_documents() -> None:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "x"}}
    stream = f"\n{json.dumps(ns)}\n{json.dumps(pod, indent=1)}{json.dumps(ns)}\n\n"
    assert list(documents(stream, "s.json")) == [ns, pod, ns]
    # One object, an array and a List still read as before.
    assert list(documents(json.dumps(pod), "p.json")) == [pod]
    assert list(documents(json.dumps([ns, pod]), "a.json")) == [ns, pod]
    listed = {"apiVersion": "v1", "kind": "List", "items": [ns, pod]}
    assert list(documents(json.dumps(listed) + json.dumps(ns), "l.json")) == [ns, pod, ns]


def test_json_stream_error_names_the_source() -> None:
    with pytest.raises(ValidationError, match=r"^bad\.json: cannot parse: "):
        list(documents('{"apiVersion": "v1", "kind": "Namespace"}\n{"kind": ', "bad.json"))


def test_matrix_reads_a_json_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pods.json"
    pods = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": n, "namespace": "x"}}
        for n in ("a", "b")
    ]
    path.write_text("\n".join(json.dumps(p) for p in pods))
    out = _json(capsys, "policy", "matrix", "-f", str(path), "-o", "json")
    assert out["pods"] == ["x/a", "x/b"]


def test_lab_manifests_reads_a_directory_in_sorted_order(tmp_path: Path) -> None:
    for name, ns in [("b.yml", "b"), ("a.yaml", "a"), ("c.json", "c"), ("notes.txt", "t")]:
        doc = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
        (tmp_path / name).write_text(json.dumps(doc))
    names = [d["metadata"]["name"] for d in manifests([str(tmp_path)])]
    assert names == ["a", "b", "c"]


def test_lab_manifests_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(
        sys, "stdin", io.StringIO("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
    )
    assert [d["metadata"]["name"] for d in manifests(["-"])] == ["x"]


def test_lab_manifests_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(RuntimeError, match=rf"^{missing}: cannot read: No such file"):
        manifests([str(missing)])


def test_lab_apply_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    argv = ["lab", "apply", "-f", str(missing), "--state-dir", str(tmp_path / "state")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == f"error: {missing}: cannot read: No such file or directory\n"


def test_lab_manifests_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(RuntimeError, match=rf"^{path}: cannot read: not UTF-8 text"):
        manifests([str(path)])


def test_policy_matrix_missing_file_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.yaml"
    assert main(["policy", "matrix", "-f", str(missing)]) == 1
    assert capsys.readouterr().err == f"error: {missing}: cannot read: No such file or directory\n"


# --- output to a closed pipe -----------------------------------------------------------


def test_closed_output_pipe_is_quiet(files: tuple[str, str]) -> None:
    """`fykectl policy matrix ... | head -1`: no BrokenPipeError traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone before fykectl writes
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "fyke.cli.main", "policy", "matrix", *_f(files)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert proc.stderr == ""
    assert proc.returncode == 1


def test_other_broken_pipes_still_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    """A BrokenPipeError that is not stdout's (a subprocess, a socket) is a real error."""
    from fyke.cli import policy

    def broken(args: Any) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(policy, "run_matrix", broken)
    with pytest.raises(BrokenPipeError):
        main(["policy", "matrix", "-f", "x.yaml"])
