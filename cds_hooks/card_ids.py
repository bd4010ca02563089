"""Card uuids that say which card they name, so feedback needs no index of the cards issued.

CDS Hooks feedback names a card only by its uuid, and hofhir counts feedback per card topic. Rather than
remember every card's topic for a week (a store write on every hook call: in Redis mode a round trip, in
embedded mode one process's memory, lost to the other gunicorn workers and to eviction), the uuid carries
what feedback needs. It is a version-8 UUID (RFC 9562 §5.8, the "custom" version; CDS Hooks asks only for a
unique identifier):

    bytes 0-2   tag: the first 24 bits of BLAKE2b(service id, NUL, topic code)
    bytes 3-5   the minute it was issued (minutes since 1970, modulo 2**24: about 32 years)
    the rest    random (74 bits once the version and variant bits are set)

Feedback reads the tag back against the service's own topics (a card shown by another service, or a uuid
hofhir did not write, reads as no topic) and the minute against HOFHIR_CARD_INDEX_TTL_S. The tag is not a
signature: a client allowed to send feedback can already name any card it was shown, as often as it likes.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import datetime
from functools import cache

from hofhir.clinical.model import Topic

MINUTES = 1 << 24  # the minute field wraps after this many minutes (~32 years)
SKEW_MINUTES = 5  # a card "from the future" by this much (another pod's clock runs ahead) still reads


def _tag(service_id: str, topic: str) -> bytes:
    return hashlib.blake2b(f"{service_id}\x00{topic}".encode(), digest_size=3).digest()


@cache
def _topics(service_id: str) -> dict[bytes, str]:
    """Tag -> topic code for one service: computed once per service id (a few, from the service registry)."""
    table = {_tag(service_id, t.value): t.value for t in Topic}
    if len(table) != len(Topic):  # two topics with one tag: feedback could not tell them apart
        raise RuntimeError(f"card uuid tags collide for the service {service_id!r}")
    return table


def _minute(now: datetime) -> int:
    return int(now.timestamp()) // 60


def issue(service_id: str, topic: str, now: datetime) -> str:
    """A fresh uuid for a card of `topic` shown by `service_id` at `now` (the wall clock, not the as-of date)."""
    raw = bytearray(_tag(service_id, topic) + (_minute(now) % MINUTES).to_bytes(3, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ours(card: object) -> bytes | None:
    """The uuid's 16 bytes when it is a version-8 uuid (the layout hofhir writes), else None."""
    try:
        raw = uuid.UUID(card).bytes  # type: ignore[arg-type]  # anything a client sent: not a str is no uuid
    except (ValueError, TypeError, AttributeError):
        return None
    return raw if raw[6] >> 4 == 8 and raw[8] >> 6 == 0b10 else None


def ours(card: object) -> bool:
    """True for a uuid in hofhir's layout (whatever its tag and age); False for any other string."""
    return _ours(card) is not None


def topic_of(service_id: str, card: object, now: datetime, ttl_s: int) -> str | None:
    """The topic of a card this service issued within the last `ttl_s` seconds (to the minute), else None."""
    raw = _ours(card)
    if raw is None:
        return None
    topic = _topics(service_id).get(raw[:3])
    if topic is None:
        return None
    age = (_minute(now) - int.from_bytes(raw[3:6], "big")) % MINUTES
    if age <= -(-ttl_s // 60) or age >= MINUTES - SKEW_MINUTES:
        return topic
    return None
