"""``taskorch serve`` at run time: one process, one event loop, three parts — the HTTP server
(uvicorn), the daemon that turns pending tasks into workflows and carries them on, and the
daemon's worker that runs their subtasks.

SIGTERM or SIGINT stops all three gracefully: event streams end, the HTTP server stops accepting,
no new task is taken, running attempts finish and their outcomes are stored. Every workflow stays
in its stored state; the next ``taskorch serve`` carries the unfinished ones on.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from taskorch.domain.errors import ConfigError
from taskorch.engine.daemon import Daemon, DaemonStats
from taskorch.engine.setup import agents_for_run, open_engine
from taskorch.http.app import check_root_path, create_app
from taskorch.http.auth import check_binding
from taskorch.http.guard import HostPolicy
from taskorch.runtime.metrics import UNASSIGNED_AGENT
from taskorch.settings import Settings

GRACEFUL_HTTP_S = 5


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    agent: str = "sim"
    sim_duration_s: float = 0.0
    concurrency: int | None = None
    max_workflows: int | None = None
    root_path: str | None = None
    """The path prefix a proxy serves it under; None: ``TASKORCH_ROOT_PATH``."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: :func:`serve` stops every part on a signal."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """Bind now, so a taken port is a one-line error rather than uvicorn exiting the process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


async def serve(
    settings: Settings,
    options: ServeOptions,
    *,
    on_ready: Callable[[str, Daemon], None] | None = None,
) -> DaemonStats:
    token = settings.taskorch_api_token.get_secret_value() if settings.taskorch_api_token else None
    check_binding(options.host, token)
    HostPolicy.serving(options.host, options.port, settings.allowed_hosts)  # bad entries: now
    check_root_path(settings.taskorch_root_path if options.root_path is None else options.root_path)
    sock = listen(options.host, options.port)
    try:
        port = sock.getsockname()[1]  # the one chosen for port 0
        hosts = HostPolicy.serving(options.host, port, settings.allowed_hosts)
        async with open_engine(settings) as engine:
            pool = await agents_for_run(engine, options.agent, options.sim_duration_s)
            concurrency = options.concurrency or settings.worker_concurrency
            daemon = Daemon(
                engine,
                pool,
                options={"agent": pool.mode},
                note=pool.note,
                max_workflows=options.max_workflows,
                worker_concurrency=concurrency,
            )
            stopping = asyncio.Event()
            app = create_app(
                engine,
                token=token,
                local_agents=[_SIMULATED | {"max_concurrency": concurrency}]
                if pool.mode == "sim"
                else [],
                stopping=stopping,
                hosts=hosts,
                root_path=options.root_path,
            )
            config = uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=GRACEFUL_HTTP_S,
            )
            server = _Server(config)

            def stop() -> None:
                stopping.set()
                daemon.stop()
                server.should_exit = True

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop)
            try:
                return await _run(server, app.state.started, sock, daemon, stop, on_ready)
            finally:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)
    finally:
        sock.close()


async def _run(
    server: _Server,
    ready: asyncio.Event,
    sock: socket.socket,
    daemon: Daemon,
    stop: Callable[[], None],
    on_ready: Callable[[str, Daemon], None] | None,
) -> DaemonStats:
    await daemon.prepare()
    http = asyncio.create_task(server.serve(sockets=[sock]), name="serve-http")
    work = asyncio.create_task(daemon.run(), name="serve-daemon")
    started = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({http, started}, return_when=asyncio.FIRST_COMPLETED)
    if started in done and on_ready is not None:
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        on_ready(f"http://{shown}:{port}", daemon)
    started.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await started
    # Whichever part ends first (a signal, or a crash) ends the other one too.
    await asyncio.wait({http, work}, return_when=asyncio.FIRST_COMPLETED)
    stop()
    results = await asyncio.gather(http, work, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    stats = results[1]
    assert isinstance(stats, DaemonStats)
    return stats


_SIMULATED: dict[str, Any] = {
    "id": UNASSIGNED_AGENT,
    "name": "sim",
    "type": "sim",
    "simulated": True,
}
"""How ``/api/v1/agents`` shows the simulated agent that runs this server's subtasks when no
agent is registered."""
