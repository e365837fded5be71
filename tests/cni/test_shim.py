"""`fyke-cni` as the runtime runs it: a subprocess with CNI_* env and the config on stdin."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fyke.agent.plumbing import host_ifname
from tests.agent.harness import K8S_ARGS, Netns, host_veths, ip_json, needs_root, running_agent

SHIM = [sys.executable, "-m", "fyke.cni.main"]
CNI_SRC = Path(__file__).parents[2] / "src" / "fyke" / "cni"


def cni_env(command: str, cid: str = "", netns: str = "", ifname: str = "eth0") -> dict[str, str]:
    """The environment containerd gives a plugin (empty values left out)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": K8S_ARGS.format(ns="x", name="a", cid=cid) if cid else "",
        "CNI_PATH": "/opt/cni/bin",
    }
    return {k: v for k, v in env.items() if v}


def conflist(socket: str, version: str = "1.1.0") -> dict[str, Any]:
    return {
        "cniVersion": version,
        "name": "fyke-pods",
        "plugins": [{"type": "fyke-cni", "mtu": 1450, "agentSocket": socket}, {"type": "portmap"}],
    }


def shim(env: dict[str, str], stdin: str | dict[str, Any]) -> tuple[int, Any]:
    data = stdin if isinstance(stdin, str) else json.dumps(stdin)
    out = subprocess.run(SHIM, env=env, input=data, capture_output=True, text=True, timeout=30)
    assert out.stderr == "", out.stderr
    return out.returncode, json.loads(out.stdout) if out.stdout.strip() else None


async def ashim(env: dict[str, str], stdin: dict[str, Any]) -> tuple[int, Any]:
    """The shim from inside a running event loop (so the in-process agent keeps serving)."""
    proc = await asyncio.create_subprocess_exec(
        *SHIM,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(json.dumps(stdin).encode())
    assert err == b"", err
    code = await proc.wait()
    return code, json.loads(out) if out.strip() else None


def test_version_needs_no_agent() -> None:
    code, out = shim({"CNI_COMMAND": "VERSION"}, {"cniVersion": "1.0.0"})
    assert (code, out) == (
        0,
        {"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]},
    )


def test_missing_env_is_code_4_naming_the_variable(tmp_path: Path) -> None:
    env = cni_env("ADD", "c1", "", "eth0")  # no CNI_NETNS
    code, out = shim(env, conflist(str(tmp_path / "no.sock")))
    assert code != 0
    assert out["code"] == 4 and "CNI_NETNS" in out["msg"] and out["cniVersion"] == "1.1.0"
    code, out = shim({"PATH": "/bin"}, "{}")
    assert code != 0 and out["code"] == 4 and "CNI_COMMAND" in out["msg"]
    env = {k: v for k, v in cni_env("DEL", "c1").items() if k != "CNI_IFNAME"}
    code, out = shim(env, conflist(str(tmp_path / "no.sock")))
    assert out["code"] == 4 and "CNI_IFNAME" in out["msg"]


@pytest.mark.parametrize(
    ("stdin", "code", "words"),
    [
        ("{not json", 6, "not valid JSON"),
        ("[1, 2]", 7, "must be a JSON object"),
        ('{"cniVersion": "1.1.0", "type": "fyke-cni"}', 7, "name"),
        ('{"cniVersion": "0.3.1", "name": "n", "type": "fyke-cni"}', 1, "0.3.1"),
        ('{"cniVersion": "1.1.0", "name": "n", "plugins": [{"type": "bridge"}]}', 7, "fyke-cni"),
        (
            '{"cniVersion": "1.1.0", "name": "n", "type": "fyke-cni", '
            '"ipam": {"type": "host-local"}}',
            2,
            "ipam.type",
        ),
    ],
)
def test_bad_config(stdin: str, code: int, words: str) -> None:
    rc, out = shim(cni_env("ADD", "c1", "/run/netns/x"), stdin)
    assert rc != 0
    assert out["code"] == code, out
    assert words in out["msg"] + out["details"]


def test_del_without_agent_asks_to_try_again(tmp_path: Path) -> None:
    """Documented choice: the attachment may still hold an IP and a veth, so DEL is retried."""
    code, out = shim(cni_env("DEL", "unknown-container"), conflist(str(tmp_path / "no.sock")))
    assert code != 0 and out["code"] == 11 and "no.sock" in out["details"]


def test_status_without_agent_is_50(tmp_path: Path) -> None:
    code, out = shim(cni_env("STATUS"), conflist(str(tmp_path / "no.sock")))
    assert code != 0 and out["code"] == 50


def test_shim_imports_only_the_standard_library() -> None:
    for path in CNI_SRC.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or name.startswith("fyke.cni"), (path, name)
    probe = (
        "import sys, fyke.cni.main; print(sorted(m for m in sys.modules if m.startswith('fyke')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['fyke', 'fyke.cni', 'fyke.cni.main', 'fyke.cni.protocol']"


@needs_root
def test_shim_through_a_running_agent(netns: Netns, sock_dir: Path) -> None:
    path = netns.make()
    before = host_veths()

    async def scenario() -> None:
        async with running_agent(sock_dir) as agent:
            cfg = conflist(agent.socket)
            code, result = await ashim(cni_env("ADD", "shim-1", path), cfg)
            assert code == 0, result
            assert result["ips"][0]["address"] == "10.77.0.2/24"
            assert result["interfaces"][1]["sandbox"] == path
            addrs = ip_json(f"-n {netns.name_of(path)} -4 addr show dev eth0")[0]["addr_info"]
            assert addrs[0]["local"] == "10.77.0.2"

            assert await ashim(cni_env("CHECK", "shim-1", path), {**cfg, "prevResult": result}) == (
                0,
                None,
            )
            assert await ashim(cni_env("STATUS"), cfg) == (0, None)
            assert await ashim(cni_env("DEL", "shim-1", path), cfg) == (0, None)
            assert await ashim(cni_env("DEL", "shim-1", path), cfg) == (0, None)
            assert await ashim(cni_env("DEL", "never-seen"), cfg) == (0, None)
            code, err = await ashim(cni_env("CHECK", "shim-1", path), cfg)
            assert code != 0 and err["code"] == 3

            await ashim(cni_env("ADD", "shim-2", path), cfg)
            gc = {**cfg, "cni.dev/valid-attachments": []}
            assert await ashim(cni_env("GC"), gc) == (0, None)
            assert agent.ipam.allocations() == [] and agent.ports.ports == {}
            assert host_ifname("shim-2", "eth0") not in host_veths()

            agent.server.set_ready(False, "br-int is not up yet")
            code, err = await ashim(cni_env("STATUS"), cfg)
            assert code != 0 and (err["code"], err["msg"]) == (50, "br-int is not up yet")

    asyncio.run(asyncio.wait_for(scenario(), timeout=50))
    assert host_veths() == before
