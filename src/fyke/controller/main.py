"""fyke-controller: compiles the cluster's policies once and serves each node's agent its
span over HTTPS (see spans.py); writes Antrea-style realization status onto policies.

Usage: fyke-controller --kubeconfig K --state-dir D [--listen HOST:PORT]

D holds the serving CA and certificate (ca.crt: what agents trust), the node-token secret
(node-token-secret; see auth.py) and, once listening, endpoint.json ({"url", "pid"}).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
from pathlib import Path

from aiohttp import web

from fyke.controller.auth import ensure_secret
from fyke.controller.spans import SpanController
from fyke.kube.client import async_client
from fyke.util.certs import ensure_certs

log = logging.getLogger("fyke.controller")


async def serve(args: argparse.Namespace) -> None:
    state = Path(args.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / "endpoint.json").unlink(missing_ok=True)
    host, _, port = args.listen.rpartition(":")
    _, crt, key = ensure_certs(state, host, name="fyke-controller")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(crt, key)
    secret = ensure_secret(state / "node-token-secret")
    client = async_client(args.kubeconfig, field_manager="fyke-controller")
    controller = SpanController(client, secret)
    await controller.start()
    runner = web.AppRunner(controller.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, int(port), ssl_context=tls, shutdown_timeout=1.0)
    await site.start()
    bound = runner.addresses[0][1]
    url = f"https://{host}:{bound}"
    tmp = state / "endpoint.json.tmp"
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    tmp.replace(state / "endpoint.json")
    log.info("serving spans at %s (%d nodes)", url, len(controller.spans))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        (state / "endpoint.json").unlink(missing_ok=True)
        await controller.stop()
        await runner.cleanup()
        await client.close()  # type: ignore[no-untyped-call]


def main() -> None:
    ap = argparse.ArgumentParser(prog="fyke-controller")
    ap.add_argument("--kubeconfig", default=None)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--listen", default="0.0.0.0:9443", help="HOST:PORT (port 0: any free)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
