"""The topic scheme hw/{site}/{family}/{device_id}/{kind}, parsed and built.

Never trust where a device claims to stand from its payload; the topic names the device only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from hazwatch.base.errors import TopicError, shown

ROOT = "hw"
SUBSCRIPTION = "hw/+/+/+/+"
ALERT_ROOT = "hw/alerts"
DEADLETTER_ROOT = "hw/deadletter"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")  # api/params.py SEGMENT
RESERVED_SITES = frozenset({"alerts", "deadletter"})


@dataclass(frozen=True, slots=True)
class Topic:
    site: str
    family: str
    device: str
    kind: str

    def __str__(self) -> str:
        return f"{ROOT}/{self.site}/{self.family}/{self.device}/{self.kind}"


@lru_cache(maxsize=65536)
def parse_topic(topic: str) -> Topic:
    """Split and check a device topic (cached: a fleet has a bounded set of topics)."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[0] != ROOT:
        raise TopicError(
            f"topic must be hw/{{site}}/{{family}}/{{device_id}}/{{kind}}, got {shown(topic)}"
        )
    _, site, family, device, kind = parts
    for name, value in (("site", site), ("family", family), ("device_id", device), ("kind", kind)):
        if not _SEGMENT.fullmatch(value):  # match() lets "a1\n" by
            raise TopicError(
                f"topic {name} {shown(value)} is not a valid identifier in {shown(topic)}"
            )
    if site in RESERVED_SITES:
        raise TopicError(
            f"topic {shown(topic)} is under a hazwatch output root, not a device topic"
        )
    return Topic(site, family, device, kind)


def build_topic(site: str, family: str, device: str, kind: str) -> str:
    return str(Topic(site, family, device, kind))
