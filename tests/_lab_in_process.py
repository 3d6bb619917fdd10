"""A lab on a thread of the test's own process, for tests that reach into its cluster (tokens,
clock, bookmark interval) while a client talks to it over HTTPS."""

from __future__ import annotations

import concurrent.futures
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tui.embedded_lab import EmbeddedLab


@contextmanager
def lab_in_process(directory: Path, nodes: int = 5, seed: int = 4) -> Iterator[EmbeddedLab]:
    thresholds = gc.get_threshold()
    lab = EmbeddedLab(directory, nodes=nodes, seed=seed)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()
        gc.unfreeze()  # the lab freezes the collector for its own objects
        gc.set_threshold(*thresholds)


def on_lab_loop(lab: EmbeddedLab, call: Callable[[], Any]) -> Any:
    """Run `call` on the lab's event loop (nothing there is thread-safe) and return its result."""
    done: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        try:
            done.set_result(call())
        except BaseException as err:
            done.set_exception(err)

    lab._loop.call_soon_threadsafe(run)
    return done.result(10)
