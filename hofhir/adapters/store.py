"""Small shared state: one Redis adapter per process, or a bounded in-process cache in the embedded mode.

Used for feedback counts (and, read only, the card index of earlier versions), replayed JWT ids,
notification de-duplication, the run-ahead evaluation cache, the task delivery cap and the dead-letter list.
Keys carry a prefix per use.
Every operation either does its work or raises :class:`StoreUnavailable` (never a client library's own
exception), so callers decide what an outage means for them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import redis
from cachetools import TLRUCache
from redis.backoff import NoBackoff
from redis.retry import Retry

T = TypeVar("T")
DEFAULT_MAX_ENTRIES = 200_000  # the embedded store: ~400 bytes an entry (benchmarks/store.py), ~80 MB when full


class StoreUnavailable(Exception):
    """The store did not answer (Redis down, hung, or slower than the time allowed)."""


class OnceStore(Protocol):
    """What a replay check needs: record a key unless it is already there."""

    def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool: ...


class Store(OnceStore, Protocol):
    def get(self, key: str) -> str | None: ...
    def put(self, key: str, value: str, ttl_s: int) -> None: ...
    def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool: ...
    def increment(self, key: str, ttl_s: int) -> int:
        """Add one to a counter that expires `ttl_s` after its first increment; the new value."""
        ...

    def incr(self, key: str, field: str, amount: int = 1) -> None: ...
    def counts(self, key: str) -> dict[str, int]: ...
    def push(self, key: str, value: str, limit: int = 10_000) -> None: ...
    def items(self, key: str, count: int = 100) -> list[str]: ...
    def length(self, key: str) -> int: ...
    def ping(self) -> bool: ...


class MemoryStore:
    """The embedded mode's store: one process, bounded.

    Values live in a TTL + LRU cache (cachetools' TLRUCache: each entry expires at its own time, the least
    recently used entry goes first when full), so memory stays bounded and every call costs the same
    however long the process runs (benchmarks/store.py shows it over 200,000 puts). Counters by field
    (feedback) and lists (dead letters) are small by construction.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        # (value, the clock time it expires at)
        self._values: TLRUCache[str, tuple[str, float]] = TLRUCache(
            maxsize=max_entries, ttu=lambda _key, value, _now: value[1], timer=clock
        )
        self._hashes: dict[str, dict[str, int]] = {}
        self._lists: dict[str, list[str]] = {}

    def __len__(self) -> int:
        with self._lock:
            self._values.expire()
            return len(self._values)

    def get(self, key: str) -> str | None:
        with self._lock:
            item = self._values.get(key)
            return item[0] if item is not None else None

    def _until(self, ttl_s: int) -> float:
        return self._clock() + max(1, ttl_s)

    def put(self, key: str, value: str, ttl_s: int) -> None:
        with self._lock:
            self._values[key] = (value, self._until(ttl_s))

    def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool:
        with self._lock:
            if self._values.get(key) is not None:
                return False
            self._values[key] = (value, self._until(ttl_s))
            return True

    def increment(self, key: str, ttl_s: int) -> int:
        with self._lock:
            item = self._values.get(key)
            # The expiry counts from the first increment, as Redis' INCR + EXPIRE NX does.
            count, until = (int(item[0]) + 1, item[1]) if item is not None else (1, self._until(ttl_s))
            self._values[key] = (str(count), until)
            return count

    def incr(self, key: str, field: str, amount: int = 1) -> None:
        with self._lock:
            bucket = self._hashes.setdefault(key, {})
            bucket[field] = bucket.get(field, 0) + amount

    def counts(self, key: str) -> dict[str, int]:
        with self._lock:
            return dict(self._hashes.get(key, {}))

    def push(self, key: str, value: str, limit: int = 10_000) -> None:
        with self._lock:
            items = self._lists.setdefault(key, [])
            items.insert(0, value)
            del items[limit:]

    def items(self, key: str, count: int = 100) -> list[str]:
        with self._lock:
            return list(self._lists.get(key, [])[:count])

    def length(self, key: str) -> int:
        with self._lock:
            return len(self._lists.get(key, []))

    def ping(self) -> bool:
        return True


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore:
    """Redis, shared by every process that names the same URL. Fails fast: a Redis outage costs an
    answer (a fallback), not seconds of retries."""

    def __init__(self, client: redis.Redis[str] | redis.Redis[bytes], prefix: str = "hofhir:") -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "hofhir:", timeout_s: float = 0.5) -> RedisStore:
        client: redis.Redis[str] = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        return cls(client, prefix)

    def _call(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}") from exc

    def get(self, key: str) -> str | None:
        value = self._call(lambda: self.client.get(self.prefix + key))
        return _text(value) if value is not None else None

    def put(self, key: str, value: str, ttl_s: int) -> None:
        self._call(lambda: self.client.set(self.prefix + key, value, ex=max(1, ttl_s)))

    def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool:
        return bool(self._call(lambda: self.client.set(self.prefix + key, value, nx=True, ex=max(1, ttl_s))))

    def increment(self, key: str, ttl_s: int) -> int:
        def run() -> int:
            # Create the counter with its expiry if absent, then count: INCR keeps the TTL (any Redis version).
            pipe = self.client.pipeline()
            pipe.set(self.prefix + key, 0, nx=True, ex=max(1, ttl_s))
            pipe.incr(self.prefix + key)
            return int(pipe.execute()[1])

        return self._call(run)

    def incr(self, key: str, field: str, amount: int = 1) -> None:
        self._call(lambda: self.client.hincrby(self.prefix + key, field, amount))

    def counts(self, key: str) -> dict[str, int]:
        raw = self._call(lambda: self.client.hgetall(self.prefix + key))
        return {_text(k): int(v) for k, v in dict(raw).items()}

    def push(self, key: str, value: str, limit: int = 10_000) -> None:
        def run() -> None:
            pipe = self.client.pipeline()
            pipe.lpush(self.prefix + key, value)
            pipe.ltrim(self.prefix + key, 0, limit - 1)
            pipe.execute()

        self._call(run)

    def items(self, key: str, count: int = 100) -> list[str]:
        return [_text(v) for v in self._call(lambda: self.client.lrange(self.prefix + key, 0, count - 1))]

    def length(self, key: str) -> int:
        return int(self._call(lambda: self.client.llen(self.prefix + key)))

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False


class HostOnceStore:
    """Keys recorded once for every process of this host: a SQLite file with an expiry column.

    The embedded mode's replay store under gunicorn: each worker process opens the same file, and the
    insert-or-take-over-if-expired statement is atomic across them, so a JWT id is accepted once per
    host, not once per process. Wall-clock expiry (the processes share no monotonic clock).
    """

    SWEEP_EVERY = 1_000

    def __init__(self, path: str | Path, busy_timeout_s: float = 0.25, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._writes = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS once (key TEXT PRIMARY KEY, value TEXT, expires REAL)")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc

    def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool:
        now = self._clock()
        with self._lock:
            try:
                cursor = self._db.execute(
                    "INSERT INTO once (key, value, expires) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires = excluded.expires "
                    "WHERE once.expires <= ?",
                    (key, value, now + max(1, ttl_s), now),
                )
                created = cursor.rowcount == 1
                self._writes += 1
                if self._writes % self.SWEEP_EVERY == 0:
                    self._db.execute("DELETE FROM once WHERE expires <= ?", (now,))
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"{self.path}: {exc}") from exc
        return created

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM once WHERE expires > ?", (self._clock(),)).fetchone()
        return int(row[0])


def open_store(redis_url: str | None, timeout_s: float = 0.5, max_entries: int = DEFAULT_MAX_ENTRIES) -> Store:
    """Redis when configured (each call waits at most `timeout_s`), else the embedded bounded cache."""
    return RedisStore.from_url(redis_url, timeout_s=timeout_s) if redis_url else MemoryStore(max_entries)
