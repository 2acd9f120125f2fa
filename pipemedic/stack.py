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

import glob
import os
import pwd
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
    "PostgresServer",
    "PrometheusServer",
    "PushgatewayServer",
    "ServerError",
    "find_binary",
    "find_postgres_bindir",
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


def find_postgres_bindir() -> Path:
    """Return the folder with ``initdb``, ``postgres`` and ``pg_ctl``: PATH first, then Debian's.

    Debian keeps them out of PATH in ``/usr/lib/postgresql/<major>/bin``; the
    newest major version found there wins.
    """
    wanted = ("initdb", "postgres", "pg_ctl")
    on_path = shutil.which("pg_ctl")
    candidates = [Path(os.path.realpath(on_path)).parent] if on_path else []

    def major(folder: str) -> tuple[int, str]:
        version = Path(folder).parent.name
        return (int(version) if version.isdigit() else -1, version)

    candidates += [Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major)[::-1]]
    for folder in candidates:
        if all((folder / name).is_file() for name in wanted):
            return folder
    raise ServerError(
        "PostgreSQL (initdb, postgres, pg_ctl) is neither on PATH nor in "
        "/usr/lib/postgresql/*/bin; run `make test`, which installs Debian's postgresql"
    )


class PostgresServer(ManagedServer):
    """A throwaway PostgreSQL cluster on loopback, for tests, benchmarks and the demo.

    ``initdb`` runs in a private temporary folder; as root (PostgreSQL refuses
    to run as root) the cluster belongs to ``run_as`` (default: the ``postgres``
    system user if it exists, else ``nobody``). Authentication is ``trust`` for
    the superuser ``pipemedic``, which is fine for a cluster that listens on
    127.0.0.1 and on a Unix socket inside its own 0700 folder only.

    Example::

        with PostgresServer() as pg:
            dsn = pg.create_database("test_1")   # postgresql://pipemedic@127.0.0.1:PORT/test_1
    """

    user = "pipemedic"
    start_timeout = 60.0

    def __init__(self, port: int | None = None, run_as: str | None = None) -> None:
        # A folder of our own, never a caller's: as root it is handed to another
        # user, who must be able to reach it (pytest's tmp_path is 0700 root).
        super().__init__(None, port)
        self.bindir = find_postgres_bindir()
        self.datadir = self.workdir / "data"
        self._account = self._pick_account(run_as)

    @staticmethod
    def _pick_account(run_as: str | None) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in (run_as,) if run_as else ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise ServerError(f"no user {run_as or 'postgres or nobody'} to run PostgreSQL as")

    @property
    def _uid(self) -> int | None:
        return None if self._account is None else self._account.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self._account is None else self._account.pw_gid

    @property
    def _extra_groups(self) -> list[int] | None:
        # Drop root's supplementary groups along with root itself.
        return None if self._account is None else []

    @property
    def dsn(self) -> str:
        """Return the URL of the ``postgres`` maintenance database."""
        return self.database_dsn("postgres")

    def database_dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.address}/{database}"

    def _run(self, argv: Sequence[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL tool as the cluster's owner; fail with its output."""
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.workdir,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            check=False,
            user=self._uid,
            group=self._gid,
            extra_groups=self._extra_groups,
        )
        if result.returncode != 0:
            raise ServerError(
                f"{' '.join(argv)} exited with {result.returncode}:\n{result.stdout}{result.stderr}"
            )
        return result

    def argv(self) -> Sequence[str]:
        return [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-c",
            f"listen_addresses={LOOPBACK}",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.workdir}",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=32MB",
        ]

    def prepare(self) -> None:
        """Hand the folder to the cluster's owner and run ``initdb``."""
        if self._account is not None:
            os.chown(self.workdir, self._account.pw_uid, self._account.pw_gid)
            self.log_path.touch()
            os.chown(self.log_path, self._account.pw_uid, self._account.pw_gid)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]
        )

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self._uid, "group": self._gid, "extra_groups": self._extra_groups}

    def is_ready(self) -> bool:
        """Ask ``pg_isready``: the server accepts connections on its loopback port."""
        isready = [
            str(self.bindir / "pg_isready"),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
        ]
        return subprocess.run(isready, capture_output=True, check=False).returncode == 0

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run one SQL command with ``psql`` (for set-up; never with untrusted text)."""
        result = self._run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                LOOPBACK,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-c",
                sql,
            ]
        )
        return result.stdout

    def create_database(self, name: str) -> str:
        """Create an empty database and return its URL; ``name`` must be a plain identifier."""
        if not name.isidentifier() or not name.isascii():
            raise ValueError(f"invalid database name {name!r}: use letters, digits and _")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.database_dsn(name)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop with ``pg_ctl stop -m fast`` (SIGKILL if that fails), remove the folder."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            try:
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "stop",
                        "-D",
                        str(self.datadir),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        str(int(timeout)),
                    ],
                    timeout=timeout + 5,
                )
                proc.wait(timeout)
            except (ServerError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait(timeout)
        super().stop(timeout)
