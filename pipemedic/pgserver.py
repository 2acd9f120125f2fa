"""A throwaway PostgreSQL cluster on loopback, for tests, benchmarks and the demo.

Runs Debian's ``initdb``/``postgres`` in a private temporary folder through
``pipemedic.stack.ManagedServer``'s start loop; as root the cluster belongs
to an unprivileged system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipemedic.stack import LOOPBACK, ManagedServer, ServerError

__all__ = ["PostgresServer", "find_postgres_bindir"]


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

    def _connection_args(self, database: str) -> list[str]:
        """Return the client flags that reach ``database`` on this cluster's loopback port."""
        return ["-h", LOOPBACK, "-p", str(self.port), "-U", self.user, "-d", database]

    def is_ready(self) -> bool:
        """Ask ``pg_isready``: the server accepts connections on its loopback port."""
        isready = [str(self.bindir / "pg_isready"), *self._connection_args("postgres")]
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
                *self._connection_args(database),
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
