"""`fykectl lab ...`: the lab on one machine."""

from __future__ import annotations

import argparse
from typing import Any


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


def run_apiserver(args: argparse.Namespace) -> int:
    from fyke.lab.apiserver.run import main

    return main(args.listen, args.data_dir)
