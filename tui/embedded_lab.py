"""The lab run in a thread of its own, so its clock never competes with the UI's event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.serve import Lab


class EmbeddedLab:
    def __init__(self, directory: Path, **options) -> None:
        self.directory = directory
        self.options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.lab: Lab | None = None

    def start(self, timeout: float = 120.0) -> None:
        self._thread = threading.Thread(target=self._run, name="nodewb-lab", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the lab was not ready after {timeout:.0f} s")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        from lab.serve import Lab

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        self.lab = lab = Lab(self.directory, **self.options)
        try:
            loop.run_until_complete(lab.start())
        except BaseException as err:  # reported to the starting thread
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(lab.stop())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15)
