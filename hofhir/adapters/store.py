"""Small shared state: Redis when configured, process memory in the embedded mode.

Used for card index (feedback), feedback counts, replayed JWT ids, notification de-duplication, the
run-ahead evaluation cache and the dead-letter list. Keys carry a prefix per use.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import redis


class Store(Protocol):
    def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool: ...
    def get(self, key: str) -> str | None: ...
    def put(self, key: str, value: str, ttl_s: int) -> None: ...
    def incr(self, key: str, field: str, amount: int = 1) -> None: ...
    def counts(self, key: str) -> dict[str, int]: ...
    def push(self, key: str, value: str, limit: int = 10_000) -> None: ...
    def items(self, key: str, count: int = 100) -> list[str]: ...
    def length(self, key: str) -> int: ...


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[str, float]] = {}
        self._hashes: dict[str, dict[str, int]] = {}
        self._lists: dict[str, list[str]] = {}

    def _live(self, key: str) -> str | None:
        item = self._values.get(key)
        if item is None:
            return None
        if item[1] < time.monotonic():
            del self._values[key]
            return None
        return item[0]

    def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._values[key] = (value, time.monotonic() + max(1, ttl_s))
            return True

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._live(key)

    def put(self, key: str, value: str, ttl_s: int) -> None:
        with self._lock:
            if len(self._values) > 100_000:  # keep memory bounded in a long-running embedded process
                now = time.monotonic()
                self._values = {k: v for k, v in self._values.items() if v[1] >= now}
            self._values[key] = (value, time.monotonic() + max(1, ttl_s))

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


class RedisStore:
    def __init__(self, client: redis.Redis[str], prefix: str = "hofhir:") -> None:
        self.r = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "hofhir:") -> RedisStore:
        return cls(
            redis.Redis.from_url(url, decode_responses=True, socket_timeout=1.0, socket_connect_timeout=1.0), prefix
        )

    def set_if_absent(self, key: str, value: str, ttl_s: int) -> bool:
        return bool(self.r.set(self.prefix + key, value, nx=True, ex=max(1, ttl_s)))

    def get(self, key: str) -> str | None:
        value = self.r.get(self.prefix + key)
        return str(value) if value is not None else None

    def put(self, key: str, value: str, ttl_s: int) -> None:
        self.r.set(self.prefix + key, value, ex=max(1, ttl_s))

    def incr(self, key: str, field: str, amount: int = 1) -> None:
        self.r.hincrby(self.prefix + key, field, amount)

    def counts(self, key: str) -> dict[str, int]:
        raw = self.r.hgetall(self.prefix + key)
        return {str(k): int(v) for k, v in dict(raw).items()}

    def push(self, key: str, value: str, limit: int = 10_000) -> None:
        pipe = self.r.pipeline()
        pipe.lpush(self.prefix + key, value)
        pipe.ltrim(self.prefix + key, 0, limit - 1)
        pipe.execute()

    def items(self, key: str, count: int = 100) -> list[str]:
        return [str(v) for v in self.r.lrange(self.prefix + key, 0, count - 1)]

    def length(self, key: str) -> int:
        return int(self.r.llen(self.prefix + key))


def open_store(redis_url: str | None) -> Store:
    return RedisStore.from_url(redis_url) if redis_url else MemoryStore()
