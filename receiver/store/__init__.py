"""Storage backends behind one interface (see ``base.Store``).

``open_store(url)`` picks the backend from the URL: ``sqlite:///path.db``
(three slashes, then a relative path; four for an absolute one) or a bare
path opens the embedded SQLite store; ``postgresql://...`` the shared one.
SQLite options come as query parameters: ``?busy_timeout_ms=5000&synchronous=FULL``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from receiver.store.base import ActionLedger, Store, StoreError, StoreUnavailable
from receiver.store.sqlite.checkpoint import CheckpointObserver
from receiver.store.sqlite.groupcommit import CommitObserver

__all__ = ["ActionLedger", "Store", "StoreError", "StoreUnavailable", "open_store"]


async def open_store(
    url: str,
    *,
    on_commit: CommitObserver | None = None,
    on_checkpoint: CheckpointObserver | None = None,
    secondary: bool = False,
) -> Store:
    """Open the store a URL names; ``StoreError`` says what is wrong with the URL.

    ``on_checkpoint`` sees SQLite's background WAL checkpoints (PostgreSQL has none).
    ``secondary``: a helper process of the receiver that owns the SQLite file
    (``SqliteStore``); PostgreSQL has no owner, every process is a peer.
    """
    if url.startswith(("postgresql://", "postgres://")):
        from receiver.store.postgres.store import PostgresStore

        return await PostgresStore.open(url)
    from receiver.store.sqlite.store import SqliteStore

    path, options = url, {}
    if url.startswith("sqlite:"):
        if not url.startswith("sqlite:///"):
            raise StoreError(f"{url!r}: a SQLite URL is sqlite:///relative.db or sqlite:////abs.db")
        parts = urlsplit(url)
        path = url[len("sqlite:///") :].split("?", 1)[0]
        options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    elif "://" in url:
        raise StoreError(f"{url!r}: unknown store scheme (use sqlite:/// or postgresql://)")
    if not path:
        raise StoreError(f"{url!r}: no database path")
    unknown = set(options) - {"busy_timeout_ms", "synchronous"}
    if unknown:
        raise StoreError(f"{url!r}: unknown option(s) {', '.join(sorted(unknown))}")
    try:
        busy = int(options.get("busy_timeout_ms", "5000"))
    except ValueError:
        raise StoreError(f"{url!r}: busy_timeout_ms must be an integer") from None
    return await SqliteStore.open(
        path,
        busy_timeout_ms=busy,
        synchronous=options.get("synchronous", "FULL"),
        on_commit=on_commit,
        on_checkpoint=on_checkpoint,
        secondary=secondary,
    )
