"""Enforcement in the lab equals the offline engine: `fykectl lab probe` (real packets
through OVS) against `fykectl policy matrix` on the same objects."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.test_lab_one_node import FYKECTL, _leftovers, fykectl

EXAMPLES = Path(__file__).parents[2] / "examples"
PORTS = ["80/TCP", "81/TCP", "80/UDP"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if _leftovers()[0]:
        pytest.skip("another fyke lab (or a leftover) is up on this machine")
    state = tmp_path_factory.mktemp("lab")
    try:
        fykectl("up", "--nodes", "1", state=state)
        fykectl("apply", "-f", str(EXAMPLES / "cluster.yaml"), "--wait", state=state)
        yield state
    finally:
        subprocess.run(
            [FYKECTL, "lab", "down", "--state-dir", str(state)], capture_output=True, timeout=180
        )


def _expected(files: list[Path]) -> dict[str, dict[str, dict[str, str]]]:
    args = [FYKECTL, "policy", "matrix", "-o", "json"]
    for f in files:
        args += ["-f", str(f)]
    for p in PORTS:
        args += ["--port", p]
    matrix: dict[str, dict[str, dict[str, str]]] = json.loads(
        subprocess.run(args, capture_output=True, text=True, check=True).stdout
    )["matrix"]
    return matrix


def _probe(lab: Path) -> dict[str, dict[str, dict[str, str]]]:
    args = ["probe", "-o", "json", "--timeout", "1"]
    for p in PORTS:
        args += ["--port", p]
    matrix: dict[str, dict[str, dict[str, str]]] = json.loads(fykectl(*args, state=lab).stdout)[
        "matrix"
    ]
    return matrix


def _converge(lab: Path, want: dict[str, dict[str, dict[str, str]]]) -> None:
    got: dict[str, dict[str, dict[str, str]]] = {}
    for _ in range(10):
        got = _probe(lab)
        if got == want:
            return
        time.sleep(1)
    wrong = [
        f"{s} -> {d} {p}: matrix {want[s][d][p]}, probe {got[s][d][p]}"
        for s in want
        for d in want[s]
        for p in want[s][d]
        if got.get(s, {}).get(d, {}).get(p) != want[s][d][p]
    ]
    raise AssertionError(f"{len(wrong)} differences:\n" + "\n".join(wrong[:30]))


def test_no_policy_everything_allowed(lab: Path) -> None:
    _converge(lab, _expected([EXAMPLES / "cluster.yaml"]))


def test_examples_enforced_as_the_matrix_says(lab: Path) -> None:
    fykectl("apply", "-f", str(EXAMPLES / "policies.yaml"), state=lab)
    _converge(lab, _expected([EXAMPLES / "cluster.yaml", EXAMPLES / "policies.yaml"]))
    fykectl("delete", "-f", str(EXAMPLES / "policies.yaml"), state=lab)
    _converge(lab, _expected([EXAMPLES / "cluster.yaml"]))
