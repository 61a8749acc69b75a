"""Django's PostgreSQL backend for web processes, on a pool that notices the database is away.

psycopg_pool, left to itself, handles a lost database badly for a web server: it tries to reconnect
after 1 s, 2 s, 4 s, ... and a request waits the whole pool timeout for a connection that cannot
come. While PostgreSQL restarted, every API request held a thread for 10 s to answer 503, and the API
stayed down 11-28 s after PostgreSQL was back (issue 27).

FailFastPool keeps one fact: the last attempt to connect failed. While it holds, a request is
refused at once (an OperationalError, which the API answers with 503 and Retry-After), and the pool
tries to connect again every RETRY_SECONDS, so the first request after PostgreSQL is back finds a
connection waiting. imgsearch/env.py selects this backend (ENGINE "imgsearch.postgresql") when
DB_POOL is on; everything else is Django's backend unchanged.
"""

from time import monotonic

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool, PoolTimeout
from psycopg_pool.pool import AddConnection


class DatabaseUnreachable(PoolTimeout):
    """The last attempt to connect failed: refused without waiting."""


class FailFastPool(ConnectionPool):
    RETRY_SECONDS = 0.5  # how often a lost database is tried again, instead of psycopg's growing back-off
    WAIT_STEP = 0.1  # how often a request waiting for a connection looks whether the database went away

    def __init__(self, *args, **kwargs):
        self.unreachable = False
        # Never give up reconnecting: a pool that gave up would refuse requests for good.
        super().__init__(*args, reconnect_timeout=float("inf"), **kwargs)

    def getconn(self, timeout: float | None = None):
        """A connection that answers, or OperationalError: at once while the database is unreachable,
        else after `timeout` seconds (the pool's) when every connection stays busy."""
        deadline = monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if self.unreachable:
                raise DatabaseUnreachable(f"the database is unreachable; trying again every {self.RETRY_SECONDS} s")
            try:
                conn = super().getconn(min(self.WAIT_STEP, deadline - monotonic()))
            except PoolTimeout:
                if monotonic() >= deadline:
                    raise
                continue
            try:
                self.check_connection(conn)
            except Exception:
                # A connection the database dropped (a restart): the pool closes it and connects a
                # new one in the background; this request waits for that or another.
                self.putconn(conn)
                continue
            return conn

    def _connect(self, timeout: float | None = None):
        # Every new connection, at start, after a loss or to grow, is made here.
        try:
            conn = super()._connect(timeout)
        except Exception:
            self.unreachable = True
            raise
        self.unreachable = False
        return conn

    def schedule_task(self, task, delay: float) -> None:
        if isinstance(task, AddConnection):
            delay = min(delay, self.RETRY_SECONDS)
        super().schedule_task(task, delay)


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self):
        options = self.settings_dict["OPTIONS"].get("pool")
        if options and self.alias not in self._connection_pools:
            # Django's own pool property, with our class: it returns the pool registered first.
            pool = FailFastPool(
                kwargs={**self.get_connection_params(), "autocommit": True},
                open=False,
                configure=self._configure_connection,
                check=None,  # getconn checks each connection itself, without psycopg's back-off
                **(options if isinstance(options, dict) else {}),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return super().pool
