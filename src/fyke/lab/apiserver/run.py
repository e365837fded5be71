"""`fykectl lab apiserver`: run the lab API server in the foreground."""

from __future__ import annotations

import asyncio
import base64
import secrets
import signal
import socket
import ssl
import sys
from pathlib import Path

import yaml
from aiohttp import web

from fyke.lab.apiserver.server import ApiServer
from fyke.lab.apiserver.store import Store
from fyke.util.certs import ensure_certs


def _token(data_dir: Path) -> str:
    path = data_dir / "token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def write_kubeconfig(data_dir: Path, server: str, ca: Path, token: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "fyke-lab",
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "fyke-admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "fyke-lab",
                "context": {"cluster": "fyke-lab", "user": "fyke-admin", "namespace": "default"},
            }
        ],
        "current-context": "fyke-lab",
    }
    path = data_dir / "kubeconfig"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return path


async def serve(listen: str, data_dir: Path, *, bookmark_seconds: float = 5.0) -> None:
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    data_dir.mkdir(parents=True, exist_ok=True)
    ca, crt, key = ensure_certs(data_dir, host)
    token = _token(data_dir)
    store = Store(data_dir / "objects.db")
    api = ApiServer(store, token, bookmark_seconds=bookmark_seconds)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port_text or 6443)))
    port = sock.getsockname()[1]
    runner = web.AppRunner(api.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ctx)
    await site.start()
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    path = write_kubeconfig(data_dir, f"https://{shown}:{port}", ca, token)
    print(f"fyke lab apiserver listening on https://{shown}:{port}; kubeconfig {path}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    store.close()  # ends open watches
    await runner.cleanup()


def main(listen: str, data_dir: str) -> int:
    try:
        asyncio.run(serve(listen, Path(data_dir)))
    except OSError as e:
        print(f"error: cannot listen on {listen}: {e.strerror}", file=sys.stderr)
        return 1
    return 0
