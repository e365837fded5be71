"""Shared helpers: run fykectl in-process on manifests written to a temp dir."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fyke.cli.main import main

Run = Callable[..., tuple[int, Any, str]]


@pytest.fixture
def fykectl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """fykectl(yaml_text, *args) -> (exit code, parsed JSON stdout or text, stderr)."""
    counter = iter(range(1000))

    def run(manifests: str, *args: str) -> tuple[int, Any, str]:
        path = tmp_path / f"in-{next(counter)}.yaml"
        path.write_text(manifests)
        capsys.readouterr()
        argv = [*args[:2], "-f", str(path), *args[2:]]
        code = main(argv)
        out, err = capsys.readouterr()
        if "-o" in args and args[args.index("-o") + 1] == "json" and code == 0:
            return code, json.loads(out), err
        return code, out, err

    return run
