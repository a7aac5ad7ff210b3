"""The job database: one SQLAlchemy engine per process, SQLite by default, PostgreSQL by URL.

SQLite serves one machine (API, workers and reaper as processes sharing a file): WAL lets
readers run beside the one writer, and a busy timeout makes writers queue instead of failing.
Every write the service makes is either one conditional statement or starts with a write, so
no transaction has to upgrade a stale read snapshot (which SQLite would refuse at once).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from portraitist.errors import PortraitistError
from portraitist.service.models import Base

SQLITE_BUSY_TIMEOUT_S = 60


class Database:
    """An engine and its session factory; `session()` is one transaction."""

    def __init__(self, url: str):
        self.url = make_url(url)
        if self.url.get_backend_name() == "postgresql" and self.url.drivername == "postgresql":
            # SQLAlchemy's default PostgreSQL driver is psycopg2; the one installed is psycopg 3
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.engine = self._create_engine()
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _create_engine(self) -> Engine:
        if self.url.get_backend_name() != "sqlite":
            return create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        if self.url.database:
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # deleted rows are overwritten with zeros, not left in free pages (a deleted user's data)
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine

    def create_tables(self) -> None:
        """Create missing tables; two processes starting at once may race, so one retry."""
        try:
            Base.metadata.create_all(self.engine)
        except (OperationalError, ProgrammingError):
            try:
                Base.metadata.create_all(self.engine)
            except (OperationalError, ProgrammingError) as exc:
                raise PortraitistError(
                    f"Cannot create the service's tables in {self.url.render_as_string(hide_password=True)}: "
                    f"{exc.orig}. Check database_url and that the database exists."
                ) from exc

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.sessions() as session, session.begin():
            yield session

    def scrub(self) -> None:
        """Make deleted rows unreadable in the database files, where the engine can do it itself.

        SQLite: secure_delete (set on every connection) zeroes them in the main file; a TRUNCATE
        checkpoint then moves the log into it and empties the -wal file, which still held the rows
        as they were written. PostgreSQL keeps dead rows until VACUUM reuses their space: the
        operator runs VACUUM (docs/service.md).
        """
        if self.url.get_backend_name() != "sqlite":
            return
        with self.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def dispose(self) -> None:
        self.engine.dispose()
