"""An asyncio event loop in a background thread, serving simulated devices to synchronous code.

Tests, benchmarks and blocking clients (python-ipmi, ipmitool) need the simulators running
while they block. One `LoopThread` runs any number of simulators of any kind in one loop:
anything with `async start(host, port) -> int` and `async stop()` (SimBmc, SimMeter, …).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Served(Protocol):
    """A simulated device that listens on a port of its own."""

    async def start(self, host: str = ..., port: int = ...) -> int:
        """Listen and return the bound port."""
        ...

    async def stop(self) -> None:
        """Stop listening."""
        ...


class LoopThread:
    """A running event loop in a daemon thread; `serve()` starts devices in it.

    Use as a context manager, or call `close()`: it stops every served device (last started
    first), then the loop, and joins the thread.
    """

    def __init__(self, name: str = "dcmeter-sim") -> None:
        self.loop = asyncio.new_event_loop()
        self._served: list[Served] = []
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30.0) -> T:
        """Run a coroutine in the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def serve(self, device: Served, host: str = "127.0.0.1", port: int = 0) -> int:
        """Start `device` in the loop on host:port (0: a free port); return the bound port."""
        bound = self.run(device.start(host, port))
        self._served.append(device)
        return bound

    def serve_many(self, devices: Sequence[Served], host: str = "127.0.0.1") -> list[int]:
        """Start many devices, each on a free port, in one round trip to the loop."""

        async def start_all() -> list[int]:
            ports = []
            for device in devices:
                ports.append(await device.start(host, 0))
                self._served.append(device)
            return ports

        return self.run(start_all(), timeout=None)

    def close(self) -> None:
        """Stop every served device, then the loop; idempotent."""
        if self.loop.is_closed():
            return
        if self._thread.is_alive():

            async def stop_all() -> None:
                while self._served:
                    await self._served.pop().stop()

            try:
                self.run(stop_all(), timeout=30)
            finally:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> LoopThread:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
