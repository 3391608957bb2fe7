"""Running the relay: one process, or several sharing the port (``--workers``).

Signals (to the one process, or to the parent of the workers, which passes them on):

- ``SIGTERM``: drain (``gptrelay.http.drain``): stop listening, let the replies in
  progress finish for up to ``DRAIN_TIMEOUT`` seconds, cut the rest, commit every
  usage record, exit 0. Sent again during the drain it changes nothing: systemd
  sends it to every process of the service, and the parent passes it on too.
- ``SIGINT`` (Ctrl-C): the same drain; a second one cuts what is left at once.
- ``SIGQUIT``: drain with no time: cut what is in progress now (records still committed).
- ``SIGHUP``: read the upstreams' file again (``gptrelay.app.reread``); nothing is cut.
- ``SIGUSR1``: tell in the log where the tasks wait (``gptrelay.observe.waiting``); nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys

from aiohttp import web

from gptrelay import __version__
from gptrelay.app import create_app, reread
from gptrelay.db.engine import masked
from gptrelay.errors import RefusedStart, StorageError
from gptrelay.http.connection import AppRunner
from gptrelay.http.drain import CUT_GRACE, Drain
from gptrelay.observe.logs import configure as configure_logging
from gptrelay.observe.waiting import tell_waiting
from gptrelay.observe.workers import share_metrics
from gptrelay.settings import Settings, mask
from gptrelay.upstream.config import load

log = logging.getLogger("gptrelay")


# Signals that ask a running relay something, which every worker answers: SIGHUP (read the upstreams'
# file again) and SIGUSR1 (tell where its tasks wait). Their default action would end a process.
ASKED = frozenset({signal.SIGHUP, signal.SIGUSR1})


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def banner(settings: Settings, port: int) -> str:
    upstream = ("the built-in demo upstream (replies are simulated)" if settings.demo
                else upstreams_in(settings.config_file) if settings.config_file is not None
                else f"{settings.openai_base_url} with key {mask(settings.openai_api_key)}")
    access = (f"access key {mask(settings.authorization_key)}" if settings.access_keys
              else "no AUTHORIZATION_KEY: keys made with `gptrelay keys` are required once there are any; "
                   "until then anyone who can connect may use it")
    workers = f", {settings.workers} workers" if settings.workers > 1 else ""
    limits = (f"shared through Redis at {masked(settings.redis_url)}" if settings.redis_url
              else f"each of the {settings.workers} workers keeps its own counters (set REDIS_URL to share them)"
              if settings.workers > 1 else "counted in this process")
    return (f"gptrelay {__version__} listening on http://{settings.host}:{port}{workers}\n"
            f"  upstream: {upstream}\n  access:   {access}\n"
            f"  database: {masked(settings.database_url)}\n  limits:   {limits}")


def upstreams_in(path: str) -> str:
    """The upstreams of the file at ``path`` in a few words (keys counted, never shown)."""
    config = load(path)
    named = ", ".join(f"{upstream.name} ({upstream.kind}, {len(upstream.keys)} key{'s' * (len(upstream.keys) != 1)})"
                      for upstream in config.upstreams)
    return f"{named} from {path}"


async def start(settings: Settings, *, reuse_port: bool = False) -> tuple[web.AppRunner, int]:
    """Start serving; return the runner (for ``cleanup()``) and the bound port."""
    # keepalive_timeout closes a connection with no request in progress: idle between requests,
    # or still sending its first request's headers (counted from the connection's start), so
    # idle or trickling connections cannot hold file descriptors for aiohttp's default hour.
    # Bodies are never decompressed before the key check (gptrelay.http.bodies does it, bounded), and
    # a body left unread (a refused request's) is not drained: the connection closes instead.
    # shutdown_timeout: what aiohttp waits for once a drain is over (gptrelay.http.drain).
    runner = AppRunner(create_app(settings), handler_cancellation=True, auto_decompress=False,
                       lingering_time=0, keepalive_timeout=settings.client_idle_timeout, shutdown_timeout=CUT_GRACE,
                       access_log=None)  # ACCESS_LOG: one line a request from the door (gptrelay.observe)
    try:
        await runner.setup()
    except (RefusedStart, StorageError) as error:  # a configuration to fix: one line, status 2
        await runner.cleanup()
        for line in error.message.splitlines():
            print(f"gptrelay: {line}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port, backlog=4096)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise SystemExit(f"gptrelay: cannot listen on {settings.host}:{settings.port}: "
                         f"{error.strerror}") from None
    return runner, runner.addresses[0][1]


async def serve(settings: Settings, *, reuse_port: bool = False, announce: bool = True, worker: bool = False) -> None:
    """Serve until a signal says stop, then drain. The signals are heard from before the start (a
    SIGTERM then drains a relay with nothing in progress). A worker leaves SIGINT to its parent (a
    terminal's Ctrl-C reaches every process of the group: the parent passes it on once)."""
    stop = asyncio.Event()
    drain = Drain(settings.drain_timeout)
    loop = asyncio.get_running_loop()

    def on_signal(signum: signal.Signals) -> None:
        if signum == signal.SIGQUIT or (signum == signal.SIGINT and stop.is_set()):
            if stop.is_set():
                log.info("%s: cutting the replies still in progress now", signum.name)
            drain.hurry()
        elif stop.is_set():
            log.info("%s: already draining (SIGINT again or SIGQUIT cuts what is left now)", signum.name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGQUIT) if worker else (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        loop.add_signal_handler(signum, on_signal, signum)
    runner: web.AppRunner | None = None
    rereading: set[asyncio.Task[None]] = set()
    reread_when_started = False

    def reread_upstreams() -> None:
        nonlocal reread_when_started
        if runner is None:  # still starting: the file may have changed since it was read, so read it once started
            reread_when_started = True
            return
        task = loop.create_task(reread(runner.app))
        rereading.add(task)
        task.add_done_callback(rereading.discard)

    loop.add_signal_handler(signal.SIGHUP, reread_upstreams)
    loop.add_signal_handler(signal.SIGUSR1, tell_waiting)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, ASKED)  # a worker's, blocked since it began (run())
    runner, port = await start(settings, reuse_port=reuse_port)
    # What exists now lives as long as the process: keep it out of garbage collections, so a
    # full one (a pause for every open stream) walks only the streams' objects.
    gc.collect()
    gc.freeze()
    if announce:
        print(banner(settings, port), flush=True)
    if reread_when_started:
        reread_upstreams()
    try:
        await stop.wait()
    finally:
        await drain.run(runner)


WANTED_OPEN_FILES = 65536  # two sockets per open stream, and room to spare


def raise_open_file_limit() -> int:
    """Allow as many open files as streams need: up to 65,536 where the system lets a
    privileged process raise its hard limit, else the hard limit. Returns the limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (max(hard, WANTED_OPEN_FILES), hard):
        if soft >= wanted:
            return soft
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(hard, wanted)))
            return wanted
        except (ValueError, OSError):
            continue
    return soft


def run(settings: Settings) -> None:
    """Serve in the foreground until SIGINT or SIGTERM."""
    raise_open_file_limit()
    if settings.workers == 1:
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            runner.run(serve(settings))
        return
    _check_port_free(settings)
    print(banner(settings, settings.port), flush=True)
    share_metrics()  # PROMETHEUS_MULTIPROC_DIR, for the workers to sum their metrics
    # A worker starts with SIGHUP and SIGUSR1 blocked (the mask is kept across exec): their default action would end the
    # worker, and a reload asked for while workers start (systemctl reload) must neither stop the relay nor
    # be lost. It waits, pending, until serve() can act on it. The parent blocks it too until it can pass it on.
    signal.pthread_sigmask(signal.SIG_BLOCK, ASKED)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(settings,), daemon=True)
               for _ in range(settings.workers)]
    for worker in workers:
        worker.start()
    stopping = False

    def tell(signum: int) -> None:
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def stop(signum: int, frame: object) -> None:
        """Every worker drains (SIGTERM); a second Ctrl-C, or SIGQUIT, has them cut what is left."""
        nonlocal stopping
        tell(signal.SIGQUIT if signum == signal.SIGQUIT or (signum == signal.SIGINT and stopping)
             else signal.SIGTERM)
        stopping = True

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
        signal.signal(signum, stop)
    for signum in ASKED:
        signal.signal(signum, lambda signum, frame: tell(signum))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, ASKED)
    failed = False
    running = {worker.sentinel: worker for worker in workers}
    while running:
        multiprocessing.connection.wait(list(running))
        for sentinel, worker in list(running.items()):
            if worker.exitcode is None:
                continue
            del running[sentinel]
            if not stopping:  # on its own: the others drain too, and the exit status says so
                log.error("worker %d stopped unexpectedly (exit status %s): stopping the others", worker.pid,
                          worker.exitcode)
                stopping = failed = True
                tell(signal.SIGTERM)
            elif worker.exitcode != 0:
                log.error("worker %d ended its drain with exit status %s", worker.pid, worker.exitcode)
                failed = True
    if failed:
        sys.exit("gptrelay: a worker stopped unexpectedly")


def _worker(settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent tells workers to stop with SIGTERM
    # Stopped while starting (before serve() hears SIGTERM): nothing is in progress, a clean exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    configure_logging(settings)
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(serve(settings, reuse_port=True, announce=False, worker=True))


def _check_port_free(settings: Settings) -> None:
    """With SO_REUSEPORT a busy port would be shared silently; refuse instead, as one process would."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((settings.host, settings.port))
        except OSError as error:
            raise SystemExit(f"gptrelay: cannot listen on {settings.host}:{settings.port}: "
                             f"{error.strerror}") from None
