"""Serve an aiohttp app until SIGINT/SIGTERM, answering every request already sent.

``aiohttp.web.run_app`` closes the listening socket and then, at once, every
connection it deems idle, including connections whose request bytes have
arrived but not been parsed yet: their clients see the connection drop with
no answer (measured: ~100 of 200 requests in flight at SIGTERM). For
Alertmanager that is a retry, but for any client it is an unanswered request.
So shutdown is three steps:

1. stop accepting (close the listening sockets: new connections are refused);
2. linger ``linger_seconds`` while the connections already accepted deliver
   their requests and those requests start;
3. ``AppRunner.cleanup()``: idle connections close, running handlers get
   ``shutdown_seconds`` to finish, then the app's ``cleanup_ctx`` runs (the
   receiver drains its workers and closes its store there).

Example::

    serve(create_app(config), "127.0.0.1", 9099, shutdown_seconds=30)
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

__all__ = ["LINGER_SECONDS", "serve"]

log = logging.getLogger(__name__)

# How long accepted connections may still deliver their request after SIGTERM.
LINGER_SECONDS = 1.0


def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    shutdown_seconds: float = 30.0,
    linger_seconds: float = LINGER_SECONDS,
    access_log: logging.Logger | None = None,
) -> None:
    """Run ``app`` on ``host:port`` until SIGINT or SIGTERM (see the module docstring)."""
    asyncio.run(_serve(app, host, port, shutdown_seconds, linger_seconds, access_log))


async def _serve(
    app: web.Application,
    host: str,
    port: int,
    shutdown_seconds: float,
    linger_seconds: float,
    access_log: logging.Logger | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = web.AppRunner(
        app, access_log=access_log, shutdown_timeout=shutdown_seconds, handle_signals=False
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        await stop.wait()
        log.info("stopping: no new connections; answering the requests already sent")
        await site.stop()
        await asyncio.sleep(linger_seconds)
    finally:
        await runner.cleanup()
