"""`hazwatch deadletters replay`: stored dead letters fed back through ingest after a fix.

Never remove a dead letter before its message is back on the broker (QoS 1, acknowledged), and
never replay what is not the device's whole message (a truncated payload, a line hazwatch made).
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from typing import Literal

from hazwatch.base.errors import PayloadError, StoreUnavailable
from hazwatch.base.statedb import StateDB
from hazwatch.devices.decode import decode
from hazwatch.devices.family import DecodeContext
from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.deadletters import DeadLetter, DeadLetterStore
from hazwatch.ingest.failures import describe
from hazwatch.settings import Settings

Kind = Literal["replayed", "would", "failing", "unreplayable"]


@dataclass(frozen=True, slots=True)
class Outcome:
    id: int
    topic: str
    reason: str
    kind: Kind
    detail: str = ""

    def said(self, zh: bool = True) -> str:
        words = {
            "replayed": ("已重放并删除", "replayed and removed"),
            "would": ("可重放（演练）", "would be replayed (dry run)"),
            "failing": ("仍失败", "still failing"),
            "unreplayable": ("不可重放", "cannot be replayed"),
        }[self.kind]
        word = words[0] if zh else words[1]
        return f"{word}: {self.detail}" if self.detail else word

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "topic": self.topic,
            "reason": self.reason,
            "outcome": self.kind,
            "detail": self.detail,
        }


def judge(
    letter: DeadLetter,
    ctx: DecodeContext,
    *,
    now_ns: int,
    max_future_s: float,
    max_payload_bytes: int,
) -> Outcome:
    """Would ingest accept this dead letter's message now? (decoding only: no I/O)"""
    assert letter.id is not None
    base = (letter.id, letter.topic, letter.reason)
    if not letter.topic.startswith("hw/"):
        return Outcome(*base, "unreplayable", "hazwatch made it (not a device's message)")
    if letter.truncated:
        return Outcome(
            *base,
            "unreplayable",
            f"only {len(letter.raw)} of its {letter.raw_len} bytes were kept",
        )
    try:
        decode(
            letter.topic,
            letter.raw,
            ctx,
            now_ns=now_ns,
            max_future_s=max_future_s,
            max_payload_bytes=max_payload_bytes,
        )
    except PayloadError as exc:
        return Outcome(*base, "failing", f"{exc.reason}: {exc}")
    except Exception as exc:  # still a bug: keep it for the next fix
        return Outcome(*base, "failing", describe(exc))
    return Outcome(*base, "would")


def replay_deadletters(
    settings: Settings,
    *,
    reason: str | None = None,
    since_ns: int | None = None,
    limit: int = 10_000,
    dry_run: bool = False,
) -> list[Outcome]:
    """Judge the matching dead letters; unless `dry_run`, republish and remove those that pass."""
    db = StateDB(settings.state_dsn)
    try:
        store = DeadLetterStore(db)
        ctx = RegistryContext(db, batches={})
        letters = store.matching(reason=reason, since_ns=since_ns, limit=limit)
        now_ns = time.time_ns()
        outcomes = [
            judge(
                letter,
                ctx,
                now_ns=now_ns,
                max_future_s=settings.max_future_s,
                max_payload_bytes=settings.max_payload_bytes,
            )
            for letter in letters
        ]
        if dry_run:
            return outcomes
        passing = {o.id for o in outcomes if o.kind == "would"}
        if not passing:
            return outcomes
        republished = _republish(settings, [x for x in letters if x.id in passing])
        store.remove(republished)
        done = set(republished)
        return [
            Outcome(o.id, o.topic, o.reason, "replayed") if o.id in done else o for o in outcomes
        ]
    finally:
        db.close()


def _republish(settings: Settings, letters: list[DeadLetter]) -> list[int]:
    """Publish each message again at QoS 1; the ids the broker acknowledged, in order."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    target = settings.mqtt
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"hazwatch-replay-{time.time_ns() % 10**9}",
        protocol=mqtt.MQTTv5 if settings.mqtt_protocol == "5" else mqtt.MQTTv311,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        client.tls_set_context(ssl.create_default_context())
    try:
        client.connect(target.host, target.port, keepalive=30)
    except OSError as exc:
        raise StoreUnavailable(
            f"cannot reach the broker {target.host}:{target.port} to replay: {exc}"
        ) from None
    client.loop_start()
    done: list[int] = []
    try:
        pending = [(x, client.publish(x.topic, x.raw, qos=1)) for x in letters]
        deadline = time.monotonic() + 30 + len(letters) / 1000
        for letter, info in pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            info.wait_for_publish(timeout=left)
            if info.is_published() and letter.id is not None:
                done.append(letter.id)
    finally:
        client.disconnect()
        client.loop_stop()
    return done
