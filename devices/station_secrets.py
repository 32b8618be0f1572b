"""HJ 212 stations' secrets: the access password kept only as a salted PBKDF2 hash, the SM4 key,
and what a station must present to be heard (StationAccess).

Never log, show or serialise a password or a key: reprs say only whether one is set.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    """A station's PW hash and SM4 key (either may be absent)."""

    pw_hash: str | None = None
    sm4_key: bytes | None = None

    def __repr__(self) -> str:
        return (
            f"StationSecret(pw={'set' if self.pw_hash else 'none'}, "
            f"sm4_key={'set' if self.sm4_key else 'none'})"
        )


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
