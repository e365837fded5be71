"""One lab node's ovsdb-server and ovs-vswitchd, kept apart from the agent so that an
agent restart leaves the datapath (and established connections) alone.

Usage: python -m fyke.lab.ovsnode --dir DIR [--netns NS]   (runs until SIGTERM)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from fyke.ovs.daemons import OvsDaemons


async def run(directory: Path, netns: str | None) -> None:
    daemons = await OvsDaemons.start(dir=directory, netns=netns)
    (directory / "ready").write_text("ok")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    (directory / "ready").unlink(missing_ok=True)
    await daemons.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--netns", default=None)
    args = ap.parse_args()
    asyncio.run(run(Path(args.dir), args.netns))


if __name__ == "__main__":
    main()
