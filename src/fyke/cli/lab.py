"""`fykectl lab ...`: the lab on one machine."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from fyke.cli.policy import add_file_args

DEFAULT_STATE_DIR = "/var/lib/fyke/lab"


def register(sub: Any) -> None:
    p = sub.add_parser("lab", help="the lab: nodes, pods and a Kubernetes-compatible API")
    lsub = p.add_subparsers(dest="lab_command", required=True, metavar="COMMAND")

    a = lsub.add_parser("apiserver", help="run the lab API server in the foreground")
    a.add_argument(
        "--listen",
        default="127.0.0.1:6443",
        metavar="HOST:PORT",
        help="address to listen on (port 0 picks a free port)",
    )
    a.add_argument(
        "--data-dir",
        required=True,
        metavar="DIR",
        help="objects, certificates, token and kubeconfig live here",
    )
    a.set_defaults(func=run_apiserver)

    up = lsub.add_parser("up", help="start the lab")
    up.add_argument("--nodes", type=int, default=1)
    up.add_argument("--encap", choices=("geneve", "vxlan", "none"), default="geneve")
    _state(up)
    up.set_defaults(func=run_up)

    node = lsub.add_parser("node", help="add or remove a node of a running lab")
    nsub = node.add_subparsers(dest="node_command", required=True)
    na = nsub.add_parser("add", help="start one more node (node-<next number>)")
    _state(na)
    na.set_defaults(func=run_node_add)
    nr = nsub.add_parser("remove", help="stop a node and remove it; its pods are deleted")
    nr.add_argument("name", metavar="NODE")
    _state(nr)
    nr.set_defaults(func=run_node_remove)

    down = lsub.add_parser("down", help="stop the lab and remove what it made (not its state)")
    _state(down)
    down.set_defaults(func=run_down)

    for verb in ("apply", "delete"):
        v = lsub.add_parser(verb, help=f"{verb} manifests in the lab")
        add_file_args(v)
        v.add_argument(
            "--wait",
            action="store_true",
            help="until pods run and every agent has installed the policies' flows (or gone)",
        )
        v.add_argument("--timeout", type=float, default=600.0, help="seconds --wait may take")
        _state(v)
        v.set_defaults(func=run_apply if verb == "apply" else run_delete)

    pr = lsub.add_parser("probe", help="real packets between every pair of running pods")
    pr.add_argument(
        "--port",
        action="extend",
        nargs="+",
        default=[],
        metavar="PORT/PROTO",
        help="ports to probe (repeatable; default 80/TCP)",
    )
    pr.add_argument("-o", "--output", choices=("json", "table"), default="table")
    pr.add_argument("--timeout", type=float, default=2.0, help="seconds before a drop")
    _state(pr)
    pr.set_defaults(func=run_probe)

    ex = lsub.add_parser(
        "explain", help="ask the lab's controller why a connection is allowed or denied now"
    )
    ex.add_argument("--from", dest="src", required=True, metavar="NS/POD|IP")
    ex.add_argument("--to", dest="dst", required=True, metavar="NS/POD|IP")
    ex.add_argument("--port", required=True, metavar="PORT/PROTO")
    ex.add_argument("-o", "--output", choices=("json", "text"), default="text")
    _state(ex)
    ex.set_defaults(func=run_explain)

    kc = lsub.add_parser("kubeconfig", help="print the lab's kubeconfig")
    kc.add_argument("--path", action="store_true", help="print its path instead")
    _state(kc)
    kc.set_defaults(func=run_kubeconfig)


def _state(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR, metavar="DIR")


def run_apiserver(args: argparse.Namespace) -> int:
    from fyke.lab.apiserver.run import main

    return main(args.listen, args.data_dir)


def run_up(args: argparse.Namespace) -> int:
    from fyke.lab.up import up

    return up(Path(args.state_dir), args.nodes, args.encap)


def run_node_add(args: argparse.Namespace) -> int:
    from fyke.lab.up import node_add

    print(node_add(Path(args.state_dir)))
    return 0


def run_node_remove(args: argparse.Namespace) -> int:
    from fyke.lab.up import node_remove

    node_remove(Path(args.state_dir), args.name)
    return 0


def run_down(args: argparse.Namespace) -> int:
    from fyke.lab.up import down

    down(Path(args.state_dir))
    return 0


def _kubeconfig(args: argparse.Namespace) -> str:
    from fyke.lab.up import kubeconfig_path, load_spec

    state = Path(args.state_dir)
    load_spec(state)
    return str(kubeconfig_path(state))


def run_kubeconfig(args: argparse.Namespace) -> int:
    path = _kubeconfig(args)
    print(path if args.path else Path(path).read_text(), end="" if not args.path else "\n")
    return 0


def _apply_or_delete(args: argparse.Namespace, delete: bool) -> int:
    import asyncio

    from fyke.lab import objects
    from fyke.lab.up import load_spec, manifests

    docs = manifests(args.filename)
    kubeconfig = _kubeconfig(args)
    state = Path(args.state_dir)

    async def go() -> list[str]:
        c = objects.client(kubeconfig)
        applied: list[Any] = []
        try:
            done = await (objects.delete(c, docs) if delete else objects.apply(c, docs, applied))
            if args.wait:
                # Policies: until every node's agent has installed their flows.
                await objects.wait_realized(
                    [state / "nodes" / n.name for n in load_spec(state).nodes],
                    docs if delete else applied,
                    gone=delete,
                    timeout=args.timeout,
                )
                keys = {
                    f"{d['metadata'].get('namespace') or 'default'}/{d['metadata']['name']}"
                    for d in docs
                    if d.get("kind") == "Pod"
                }
                await objects.wait_pods(c, keys, gone=delete, timeout=args.timeout)
            return done
        finally:
            await c.close()  # type: ignore[no-untyped-call]

    for line in asyncio.run(go()):
        print(line)
    return 0


def run_apply(args: argparse.Namespace) -> int:
    return _apply_or_delete(args, delete=False)


def run_delete(args: argparse.Namespace) -> int:
    return _apply_or_delete(args, delete=True)


def run_explain(args: argparse.Namespace) -> int:
    """`policy explain` against the live cluster: the controller's compiled view."""
    import ssl
    import urllib.error
    import urllib.request

    from fyke.lab.up import admin_token, controller_dir, controller_url, load_spec

    state = Path(args.state_dir)
    load_spec(state)  # a clear error when there is no lab
    tls = ssl.create_default_context(cafile=str(controller_dir(state) / "ca.crt"))
    body = json.dumps({"from": args.src, "to": args.dst, "port": args.port}).encode()
    fmt = "" if args.output == "json" else "?format=text"
    req = urllib.request.Request(
        f"{controller_url()}/v1/evaluate{fmt}",
        data=body,
        headers={
            "Authorization": f"Bearer {admin_token(state).read_text().strip()}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(req, context=tls, timeout=30) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as e:
        detail = e.read().decode()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            detail = json.loads(detail)["error"]
        raise RuntimeError(f"the controller says: {detail.strip()}") from None
    except urllib.error.URLError as e:
        raise RuntimeError(f"the lab's controller is not reachable: {e.reason}") from None
    if args.output == "json":
        print(json.dumps(json.loads(text), indent=2))
    else:
        print(text, end="")
    return 0


def run_probe(args: argparse.Namespace) -> int:
    import asyncio

    from fyke.cli.policy import _print_json, _verdict_table, parse_ports
    from fyke.lab import objects
    from fyke.lab.probe import probe

    ports = parse_ports(args.port)
    kubeconfig = _kubeconfig(args)

    async def go() -> dict[str, Any]:
        c = objects.client(kubeconfig)
        try:
            pods = sorted(
                (
                    p
                    for p in await objects.pods(c)
                    if p.get("status", {}).get("phase") == "Running"
                    and p.get("status", {}).get("podIP")
                ),
                # The lab API server's order already; `policy matrix` sorts the same way.
                key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]),
            )
        finally:
            await c.close()  # type: ignore[no-untyped-call]
        return await probe(pods, [(q.port, q.protocol.value) for q in ports], args.timeout)

    result = asyncio.run(go())
    for port, why in result.get("skipped", {}).items():
        print(f"warning: {port} not probed: {why}", file=sys.stderr)
    if args.output == "json":
        _print_json(result)
    else:
        print(_verdict_table(result["pods"], result["ports"], result["matrix"]))
    return 0
