"""Bulk work without garbage-collector pauses.

Parsing and compiling a large cluster allocates millions of objects that all live on;
CPython's cyclic collector would rescan them again and again (a third of the time at
100k pods). During bulk work the collector is off; afterwards the survivors are frozen
out of future scans.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def bulk_work() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


@contextmanager
def gc_paused() -> Iterator[None]:
    """The collector off for one burst of allocation (an agent's flow sync builds 100k+
    flows that live on until the next one), and back on after, with nothing frozen: a
    long-running process keeps collecting what it drops later."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
