"""Start and stop the real Prometheus-stack servers on loopback.

Used by ``pipemedic demo`` and by the tests, so both run the same binaries the
same way: a free 127.0.0.1 port, a private temporary data folder, the log in a
file, readiness awaited on the server's own ``/-/ready`` endpoint, and a
server that dies during start-up reported with the tail of its log.

Example::

    with PrometheusServer(config_yaml) as prom:
        print(prom.url)          # http://127.0.0.1:PORT
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = [
    "AlertmanagerServer",
    "ManagedServer",
    "PrometheusServer",
    "PushgatewayServer",
    "ServerError",
    "find_binary",
    "free_port",
]

LOOPBACK = "127.0.0.1"


class ServerError(RuntimeError):
    """A server binary is missing, did not start, or did not become ready."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def find_binary(*names: str) -> str:
    """Return the first of ``names`` on PATH; a missing binary is an error, never a skip."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise ServerError(
        f"none of {', '.join(names)} is on PATH; run `make test` or `make demo`, "
        "which install Debian's packages for them"
    )


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError):
        return False


class ManagedServer:
    """One server process with a loopback port, a work folder and a log file."""

    binary_names: tuple[str, ...] = ()
    ready_path = "/-/ready"
    start_timeout = 60.0

    def __init__(self, workdir: str | Path | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"pipemedic-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return type(self).__name__.removesuffix("Server").lower()

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def argv(self) -> Sequence[str]:
        """Return the command line; subclasses add their flags."""
        raise NotImplementedError

    def log_tail(self, lines: int = 40) -> str:
        """Return the end of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def prepare(self) -> None:
        """Set up the work folder before the process starts (subclasses: e.g. initdb)."""

    def popen_kwargs(self) -> dict[str, Any]:
        """Return extra ``subprocess.Popen`` arguments (subclasses: e.g. run as another user)."""
        return {}

    def is_ready(self) -> bool:
        """Tell whether the server answers; by default its ready endpoint returns 2xx."""
        return _http_ok(self.url + self.ready_path)

    def start(self) -> Self:
        """Start the process and wait until ``is_ready``; fail with the log if it dies."""
        self.prepare()
        argv = list(self.argv())
        with self.log_path.open("ab") as log_file:
            self.proc = subprocess.Popen(
                argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                start_new_session=True,
                **self.popen_kwargs(),
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.proc.returncode} during start-up "
                    f"({' '.join(argv)}); log:\n{self.log_tail()}"
                )
            if self.is_ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"{self.name} not ready on {self.address} after {self.start_timeout:.0f}s; log:\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove a temporary work folder."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._own_workdir and not os.environ.get("PIPEMEDIC_KEEP_SERVER_DIRS"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PrometheusServer(ManagedServer):
    """A real Prometheus with the lifecycle API on, so tests can ``reload()``."""

    binary_names = ("prometheus",)

    def __init__(
        self,
        config: str = "global: {}\n",
        workdir: str | Path | None = None,
        port: int | None = None,
    ) -> None:
        super().__init__(workdir, port)
        self.config_path = self.workdir / "prometheus.yml"
        self.config_path.write_text(config)

    def argv(self) -> Sequence[str]:
        return [
            find_binary(*self.binary_names),
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--web.enable-lifecycle",
            "--log.level=info",
        ]

    def reload(self, config: str | None = None) -> None:
        """Write a new configuration (if given) and make Prometheus reload it."""
        if config is not None:
            self.config_path.write_text(config)
        req = urllib.request.Request(self.url + "/-/reload", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10):
                pass
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ServerError(f"prometheus reload failed: {detail}") from None


class AlertmanagerServer(ManagedServer):
    """A real Alertmanager; clustering is off unless ``cluster_port`` is given."""

    binary_names = ("prometheus-alertmanager", "alertmanager")

    def __init__(
        self,
        config: str,
        workdir: str | Path | None = None,
        port: int | None = None,
        cluster_port: int | None = None,
        peers: Sequence[str] = (),
    ) -> None:
        super().__init__(workdir, port)
        self.config_path = self.workdir / "alertmanager.yml"
        self.config_path.write_text(config)
        self.cluster_port = cluster_port
        self.peers = list(peers)

    @property
    def cluster_address(self) -> str:
        return f"{LOOPBACK}:{self.cluster_port}"

    def argv(self) -> Sequence[str]:
        argv = [
            find_binary(*self.binary_names),
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address={self.address}",
            "--log.level=debug",
        ]
        if self.cluster_port is None:
            argv.append("--cluster.listen-address=")
        else:
            argv += [
                f"--cluster.listen-address={self.cluster_address}",
                f"--cluster.advertise-address={self.cluster_address}",
                "--cluster.peer-timeout=2s",
                "--cluster.gossip-interval=100ms",
                "--cluster.pushpull-interval=2s",
            ]
            argv += [f"--cluster.peer={p}" for p in self.peers]
        return argv


class PushgatewayServer(ManagedServer):
    """A real Pushgateway for batch jobs."""

    binary_names = ("prometheus-pushgateway", "pushgateway")

    def argv(self) -> Sequence[str]:
        return [
            find_binary(*self.binary_names),
            f"--web.listen-address={self.address}",
            f"--persistence.file={self.workdir / 'persistence'}",
        ]
