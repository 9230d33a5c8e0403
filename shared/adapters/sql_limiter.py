"""Rate limits every instance shares, kept in the system of record (WHISPR_RATE_LIMITER=sql).

Why the database and not Memorystore or Firestore (docs/decisions.md, "Shared rate limits"):
every function and relay instance already holds a pool to Cloud SQL, so a limit costs one
statement on a connection that is there anyway, and no new service, network path or bill.
Each take is one `INSERT … ON CONFLICT DO UPDATE … RETURNING` on the key's row: the row lock
serialises concurrent takes of one key across instances, the refill uses the database's clock
(instances' clocks may differ), and the commit does not wait for the WAL flush (`synchronous_commit
= off` for it alone: a limit state lost in a crash only lets a burst through).
"""

from __future__ import annotations

from shared.storage.engine import Database

# psycopg's own parameter style, run with exec_driver_sql: no SQLAlchemy compilation per take
_TAKE = """
    WITH now AS (SELECT extract(epoch FROM clock_timestamp()) AS t)
    INSERT INTO rate_limits AS b (key, tokens, stamp, granted)
    SELECT %(key)s, %(burst)s - 1, now.t, true FROM now
    ON CONFLICT (key) DO UPDATE SET
        tokens = CASE
            WHEN least(%(burst)s, b.tokens + (excluded.stamp - b.stamp) * %(rate)s) >= 1
            THEN least(%(burst)s, b.tokens + (excluded.stamp - b.stamp) * %(rate)s) - 1
            ELSE least(%(burst)s, b.tokens + (excluded.stamp - b.stamp) * %(rate)s)
        END,
        granted = least(%(burst)s, b.tokens + (excluded.stamp - b.stamp) * %(rate)s) >= 1,
        stamp = excluded.stamp
    RETURNING tokens, granted
"""


class SqlRateLimiter:
    """Token buckets in the `rate_limits` table (PostgreSQL)."""

    def __init__(self, db: Database):
        if db.dialect != "postgresql" or db.engine.dialect.driver != "psycopg":
            raise ValueError(
                "WHISPR_RATE_LIMITER=sql needs PostgreSQL through psycopg (DATABASE_URL); use memory on SQLite"
            )
        self._db = db

    def acquire(self, key: str, *, per_second: float, burst: int) -> float:
        with self._db.transaction() as conn:
            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
            row = conn.exec_driver_sql(_TAKE, {"key": key[:200], "burst": float(burst), "rate": per_second}).one()
        tokens, granted = row
        return 0.0 if granted else (1.0 - tokens) / per_second
