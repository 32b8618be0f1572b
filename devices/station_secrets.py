"""HJ 212 stations' secrets: the access password kept only as a salted PBKDF2 hash, the SM4 key,
the keys issued by CN 1014 (KeyRotations), and what a station must present to be heard.

Never log, show or serialise a password or a key: reprs say only whether one is set.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import string
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB

PBKDF2_ITERATIONS = 100_000
_PREFIX = "pbkdf2_sha256"
SM4_KEY_HEX = 32  # 128 bits


def hash_pw(pw: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """`pbkdf2_sha256$iterations$salt$hash` of a station's PW (what the registry keeps)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pw.encode("utf-8"), salt, iterations)
    return f"{_PREFIX}${iterations}${salt.hex()}${digest.hex()}"


def check_pw_hash(text: str, where: str) -> str:
    """A stored PW hash as it must look; ConfigError naming `where` when it does not."""
    parts = text.split("$")
    ok = len(parts) == 4 and parts[0] == _PREFIX and parts[1].isdigit()
    try:
        ok = ok and len(bytes.fromhex(parts[2])) >= 8 and len(bytes.fromhex(parts[3])) == 32
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{where}: pw_hash must be pbkdf2_sha256$iterations$salt$hash")
    return text


@functools.lru_cache(maxsize=4096)
def verify_pw(pw: str, pw_hash: str) -> bool:
    """Whether `pw` is the password `pw_hash` was made from (cached: a station sends one PW
    every minute, and PBKDF2 is slow on purpose)."""
    _, iterations, salt, digest = pw_hash.split("$")
    made = hashlib.pbkdf2_hmac("sha256", pw.encode("utf-8"), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(made.hex(), digest)


def parse_sm4_key(text: str, where: str) -> bytes:
    """A 128-bit SM4 key written as 32 hex digits."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 16:
        raise ConfigError(f"{where}: sm4_key must be 32 hex digits (a 128-bit SM4 key)")
    return key


@dataclass(frozen=True, slots=True)
class StationSecret:
    """A station's PW hash and SM4 key (either may be absent); `next_sm4_key`: a new key issued
    by CN 1014 that the station has not acknowledged yet (a CP that does not decrypt with the
    key in force is tried with it)."""

    pw_hash: str | None = None
    sm4_key: bytes | None = None
    next_sm4_key: bytes | None = None

    def __repr__(self) -> str:
        return (
            f"StationSecret(pw={'set' if self.pw_hash else 'none'}, "
            f"sm4_key={'set' if self.sm4_key else 'none'}"
            f"{', next key issued' if self.next_sm4_key else ''})"
        )

    @property
    def keys(self) -> tuple[bytes, ...]:
        """The keys a CP of the station may be encrypted with, the one in force first."""
        return tuple(k for k in (self.sm4_key, self.next_sm4_key) if k is not None)


@dataclass(frozen=True, slots=True)
class StationAccess:
    """What an HJ 212 packet for a station must present to be stored.

    `registered`: the registry lists the station; `open`: it says the station needs no PW (a
    lab); `encrypted`: its CP must arrive SM4-encrypted; `units`: hazwatch name → the unit the
    station sends it in.
    """

    registered: bool
    open: bool = False
    secret: StationSecret = StationSecret()
    encrypted: bool = False
    units: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def refusal(self, pw: str) -> str | None:
        """Why a packet with this PW is refused, None when it may be stored."""
        if not self.registered:
            return "the station is in no registry entry"
        if self.open:
            return None
        if self.secret.pw_hash is None:
            return "the registry holds no PW for the station and does not mark it open"
        if not verify_pw(pw, self.secret.pw_hash):
            return "wrong PW"
        return None


OPEN = StationAccess(registered=True, open=True)


# ---------------------------------------------------------------- in the registry and the store

SECRET_FIELDS = ("site", "id", "pw", "pw_hash", "sm4_key")
MIGRATIONS = [
    "CREATE TABLE station_secret (site {text} NOT NULL, station {text} NOT NULL, "
    "pw_hash {text}, sm4_key {text}, PRIMARY KEY (site, station))",
    # CN 1014: each key issued to a station, in force once the station acknowledged it; file_fp
    # names the secrets file's key it replaces (a key changed there again voids the rotations)
    "CREATE TABLE station_key (site {text} NOT NULL, station {text} NOT NULL, qn {text} NOT NULL, "
    "sm4_key {text} NOT NULL, sk_created {text} NOT NULL, state {text} NOT NULL, "
    "file_fp {text} NOT NULL, issued_ns BIGINT NOT NULL, sent_ns BIGINT, "
    "sends INTEGER NOT NULL DEFAULT 0, done_ns BIGINT, note {text} NOT NULL DEFAULT '', "
    "PRIMARY KEY (site, station, qn))",
]
SecretKey = tuple[str, str]  # (site, station)


def _secret_entry(raw: object, where: str) -> tuple[SecretKey, StationSecret]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table")
    unknown = sorted(set(raw) - set(SECRET_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: {unknown[0]!r} is not a station secret field")
    site, ident = raw.get("site"), raw.get("id")
    if not (isinstance(site, str) and site and isinstance(ident, str) and ident):
        raise ConfigError(f"{where}: needs the station's site and id")
    where = f"{where} (station {site}/{ident})"
    pw, pw_hash, key = raw.get("pw"), raw.get("pw_hash"), raw.get("sm4_key")
    if pw is not None and pw_hash is not None:
        raise ConfigError(f"{where}: give pw or pw_hash, not both")
    if pw is not None:
        if not (isinstance(pw, str) and pw.isalnum() and len(pw) <= 9):
            raise ConfigError(f"{where}: pw must be up to 9 letters or digits (HJ 212 PW)")
        pw_hash = hash_pw(pw)
    elif pw_hash is not None:
        if not isinstance(pw_hash, str):
            raise ConfigError(f"{where}: pw_hash must be a string")
        check_pw_hash(pw_hash, where)
    sm4 = None
    if key is not None:
        if not isinstance(key, str):
            raise ConfigError(f"{where}: sm4_key must be a string of 32 hex digits")
        sm4 = parse_sm4_key(key, where)
    return (site, ident), StationSecret(pw_hash, sm4)


def parse_secrets(doc: Mapping[str, Any], source: str) -> dict[SecretKey, StationSecret]:
    """The stations' secrets a registry document points at: its `secrets` file (a TOML of
    [[station]] site, id, pw or pw_hash, sm4_key; relative to the registry file), and a
    `pw_hash` written in a [[station]] entry itself. ConfigError names file and entry."""
    found: dict[SecretKey, StationSecret] = {}
    for i, raw in enumerate(doc.get("station", []) or []):
        if isinstance(raw, Mapping) and raw.get("pw_hash") is not None:
            key, secret = _secret_entry(
                {k: raw[k] for k in ("site", "id", "pw_hash") if k in raw},
                f"{source}: [[station]] #{i + 1}",
            )
            found[key] = secret
    path_text = doc.get("secrets")
    if path_text is None:
        return found
    if not isinstance(path_text, str) or not path_text.strip():
        raise ConfigError(f"{source}: 'secrets' must name the stations' secrets file")
    path = Path(path_text)
    if not path.is_absolute():
        path = Path(source).parent / path
    try:
        secrets_doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: secrets file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    entries = secrets_doc.get("station", [])
    if set(secrets_doc) - {"station"} or not isinstance(entries, list):
        raise ConfigError(f"{path}: holds only [[station]] tables")
    for i, raw in enumerate(entries):
        key, secret = _secret_entry(raw, f"{path}: [[station]] #{i + 1}")
        if key in found:
            raise ConfigError(f"{path}: [[station]] #{i + 1} repeats station {key[0]}/{key[1]}")
        found[key] = secret
    return found


def store_secrets(db: StateDB, found: Mapping[SecretKey, StationSecret]) -> None:
    """Replace the stored secrets (inside the caller's transaction): a table of their own,
    never part of the registry document `registry show` and the API read."""
    db.execute("DELETE FROM station_secret")
    for (site, station), secret in found.items():
        db.execute(
            "INSERT INTO station_secret (site, station, pw_hash, sm4_key) VALUES (?, ?, ?, ?)",
            (site, station, secret.pw_hash, secret.sm4_key.hex() if secret.sm4_key else None),
        )


def migrate(db: StateDB) -> None:
    db.migrate("station_secret", MIGRATIONS)


def load_secrets(db: StateDB) -> dict[SecretKey, StationSecret]:
    rows = db.query("SELECT site, station, pw_hash, sm4_key FROM station_secret")
    return {
        (str(site), str(station)): StationSecret(
            str(pw_hash) if pw_hash else None, bytes.fromhex(str(key)) if key else None
        )
        for site, station, pw_hash, key in rows
    }


# ---------------------------------------------------------------- CN 1014: new keys for stations

KEY_ALPHABET = string.ascii_letters + string.digits
NEW_KEY_CHARS = 16  # NewSK is 16 characters, the key their bytes (A.2's key is 16 × '0')
KEY_STATES = ("issued", "active", "failed", "superseded")


def key_fingerprint(key: bytes | None) -> str:
    """What the rotations remember of the secrets file's key: a hash, never the key."""
    return "" if key is None else hashlib.sha256(b"hazwatch-sm4:" + key).hexdigest()[:32]


def new_sm4_key() -> str:
    """A new key as NewSK carries it: 16 random letters and digits (their bytes the key)."""
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(NEW_KEY_CHARS))


@dataclass(frozen=True, slots=True)
class KeyIssue:
    """A new key on its way to a station: CN 1014 with this QN, SKCreateTime and NewSK."""

    site: str
    station: str
    qn: str
    sk_created: str
    new_key: bytes

    def __repr__(self) -> str:
        return f"KeyIssue({self.site}/{self.station}, qn={self.qn}, new_key=<hidden>)"


@dataclass(frozen=True, slots=True)
class _KeyRow:
    qn: str
    key: bytes
    sk_created: str
    state: str
    file_fp: str
    issued_ns: int
    sent_ns: int | None
    sends: int


class KeyRotations:
    """The SM4 keys hazwatch issued to stations (CN 1014) and which is in force, in the state
    store beside the secrets file's keys: `overlay` gives a station's secret with them, read
    from a snapshot refreshed at most every `refresh_s` (one cheap query)."""

    def __init__(
        self,
        db: StateDB,
        *,
        refresh_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        migrate(db)
        self._refresh_s = refresh_s
        self._clock = clock
        self._next = 0.0
        self._signature: tuple[object, ...] | None = None
        self._rows: dict[SecretKey, list[_KeyRow]] = {}
        self._lock = threading.Lock()

    # reading
    def _snapshot(self) -> dict[SecretKey, list[_KeyRow]]:
        now = self._clock()
        if now < self._next:
            return self._rows
        with self._lock:
            self._next = now + self._refresh_s
            signature = tuple(
                self.db.query(
                    "SELECT COUNT(*), MAX(issued_ns), MAX(done_ns), SUM(sends) FROM station_key"
                )[0]
            )
            if signature != self._signature:
                self._signature = signature
                self._rows = self._load()
        return self._rows

    def _load(self) -> dict[SecretKey, list[_KeyRow]]:
        found: dict[SecretKey, list[_KeyRow]] = {}
        for row in self.db.query(
            "SELECT site, station, qn, sm4_key, sk_created, state, file_fp, issued_ns, sent_ns, "
            "sends FROM station_key WHERE state IN ('issued', 'active') ORDER BY issued_ns"
        ):
            found.setdefault((str(row[0]), str(row[1])), []).append(
                _KeyRow(
                    str(row[2]),
                    bytes.fromhex(str(row[3])),
                    str(row[4]),
                    str(row[5]),
                    str(row[6]),
                    int(row[7]),
                    None if row[8] is None else int(row[8]),
                    int(row[9]),
                )
            )
        return found

    def forget(self) -> None:
        """Read the store again at the next question (after this process changed it)."""
        self._next = 0.0

    def overlay(self, site: str, station: str, secret: StationSecret) -> StationSecret:
        """The station's secret with the key hazwatch issued in force (and one issued and not
        yet acknowledged as next), as long as the secrets file still holds the key they
        replaced: a key changed there again wins."""
        rows = self._snapshot().get((site, station))
        if not rows:
            return secret
        fp = key_fingerprint(secret.sm4_key)
        active = [r for r in rows if r.state == "active" and r.file_fp == fp]
        issued = [r for r in rows if r.state == "issued" and r.file_fp == fp]
        return replace(
            secret,
            sm4_key=active[-1].key if active else secret.sm4_key,
            next_sm4_key=issued[-1].key if issued else None,
        )

    def waiting(self, site: str, station: str, file_key: bytes | None) -> bool:
        """Whether a key issued to the station waits for its acknowledgement."""
        fp = key_fingerprint(file_key)
        return any(
            r.state == "issued" and r.file_fp == fp
            for r in self._snapshot().get((site, station), [])
        )

    def state_of(self, site: str, station: str) -> list[dict[str, object]]:
        """The station's key rotations, newest first, without any key: for a person."""
        return [
            {
                "qn": str(r[0]),
                "sk_created": str(r[1]),
                "state": str(r[2]),
                "issued_ns": int(r[3]),
                "sent_ns": None if r[4] is None else int(r[4]),
                "sends": int(r[5]),
                "done_ns": None if r[6] is None else int(r[6]),
                "note": str(r[7]),
            }
            for r in self.db.query(
                "SELECT qn, sk_created, state, issued_ns, sent_ns, sends, done_ns, note "
                "FROM station_key WHERE site = ? AND station = ? ORDER BY issued_ns DESC",
                (site, station),
            )
        ]

    # writing
    def issue(
        self, site: str, station: str, file_key: bytes | None, now_ns: int, zone_h: float = 8.0
    ) -> KeyIssue:
        """A new key for the station, sent with CN 1014 (encrypted with the key in force) the
        next time it is connected; an earlier one not yet acknowledged is superseded.
        ConfigError when the station has no key to send the new one under."""
        current = self.overlay(site, station, StationSecret(sm4_key=file_key))
        if current.sm4_key is None:
            raise ConfigError(
                f"station {site}/{station} has no SM4 key: CN 1014 carries the new key "
                "encrypted with the one in force, so give the station its first key in the "
                "registry's secrets file (sm4_key) and `hazwatch registry load` it"
            )
        text = new_sm4_key()
        qn = _qn(now_ns, zone_h)
        with self.db.transaction():
            self.db.execute(
                "UPDATE station_key SET state = 'superseded', done_ns = ?, "
                "note = 'a newer key was issued' WHERE site = ? AND station = ? "
                "AND state = 'issued'",
                (now_ns, site, station),
            )
            self.db.execute(
                "INSERT INTO station_key (site, station, qn, sm4_key, sk_created, state, file_fp, "
                "issued_ns) VALUES (?, ?, ?, ?, ?, 'issued', ?, ?)",
                (
                    site,
                    station,
                    qn,
                    text.encode("ascii").hex(),
                    qn,
                    key_fingerprint(file_key),
                    now_ns,
                ),
            )
        self.forget()
        return KeyIssue(site, station, qn, qn, text.encode("ascii"))

    def due(
        self,
        site: str,
        station: str,
        now_ns: int,
        file_key: bytes | None,
        resend_s: float,
        max_sends: int,
    ) -> KeyIssue | None:
        """The issued key to send the station now (never sent, or unanswered for resend_s),
        counted as sent; one sent max_sends times unanswered is given up (failed)."""
        fp = key_fingerprint(file_key)
        rows = [
            r
            for r in self._snapshot().get((site, station), [])
            if r.state == "issued" and r.file_fp == fp
        ]
        if not rows:
            return None
        row = rows[-1]
        if row.sent_ns is not None and now_ns - row.sent_ns < resend_s * 1e9:
            return None
        if row.sends >= max_sends:
            self.finish(site, station, row.qn, False, now_ns, f"unanswered after {row.sends} sends")
            return None
        changed = self.db.execute(
            "UPDATE station_key SET sent_ns = ?, sends = sends + 1 WHERE site = ? AND station = ? "
            "AND qn = ? AND state = 'issued' AND sends = ?",
            (now_ns, site, station, row.qn, row.sends),
        )
        self.forget()
        if changed.rowcount == 0:  # another gateway sent it just now
            return None
        return KeyIssue(site, station, row.qn, row.sk_created, row.key)

    def finish(
        self, site: str, station: str, qn: str, ok: bool, now_ns: int, note: str = ""
    ) -> bool:
        """The station's answer to the CN 1014 of `qn`: acknowledged (ExeRtn=1), the new key is
        in force from now on and the one before retired; else it failed and the old stays.
        False when no key issued with that QN waits for an answer."""
        with self.db.transaction():
            rows = self.db.query(
                "SELECT file_fp FROM station_key WHERE site = ? AND station = ? AND qn = ? "
                "AND state = 'issued'",
                (site, station, qn),
            )
            if not rows:
                return False
            if ok:
                self.db.execute(
                    "UPDATE station_key SET state = 'superseded', done_ns = ?, "
                    "note = 'a newer key is in force' WHERE site = ? AND station = ? "
                    "AND state = 'active'",
                    (now_ns, site, station),
                )
            self.db.execute(
                "UPDATE station_key SET state = ?, done_ns = ?, note = ? WHERE site = ? "
                "AND station = ? AND qn = ?",
                ("active" if ok else "failed", now_ns, note, site, station, qn),
            )
        self.forget()
        return True


def _qn(ts_ns: int, zone_h: float) -> str:
    """A QN (YYYYMMDDhhmmsszzz, local time) for a UTC time (as devices.hj212.qn_of)."""
    local = datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).astimezone(
        timezone(timedelta(hours=zone_h))
    )
    return local.strftime("%Y%m%d%H%M%S") + f"{(ts_ns // 1_000_000) % 1000:03d}"
