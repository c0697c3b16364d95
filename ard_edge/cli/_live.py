"""``run --http``: start the live page before the run, and keep it up after the run when asked."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading

import click


def start_live(stack: contextlib.ExitStack, settings, listen: str | None):
    """The started :class:`~ard_edge.runtime.live.LiveServer` (closed by ``stack``), or None when
    neither ``--http`` nor ``http.listen`` asks for one."""
    if listen:
        settings = dataclasses.replace(settings, listen=listen)
        settings.validate("http")
    if not settings.listen:
        return None
    from ard_edge.runtime.live import TOKEN_ENV, LiveServer

    server = stack.enter_context(LiveServer(settings))
    click.echo(f"live page: {server.url} (also /metrics, /healthz, /readyz, /api/status)"
               + (f"; every request needs the token in {TOKEN_ENV}" if server.token else ""), err=True)
    return server


def serve_until_signal(server) -> None:
    """After the run: keep the page up until SIGINT/SIGTERM."""
    click.echo(f"the run is over; still serving {server.url} (Ctrl-C to stop)", err=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2):  # a timed wait, so the handler runs promptly
            pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
