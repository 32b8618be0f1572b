"""The device registry: the sites, and which reader, scale, terminal, station, camera is at each.

Never query the state store per message: lookups are dict reads on a cached snapshot.
"""

from __future__ import annotations

import json
import logging
import math
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hazwatch.base.errors import ConfigError
from hazwatch.base.statedb import StateDB
from hazwatch.devices.rfid_vendors import HAZWATCH, READER_PAYLOADS
from hazwatch.devices.station_secrets import OPEN as OPEN_ACCESS
from hazwatch.devices.station_secrets import (
    KeyRotations,
    SecretKey,
    StationAccess,
    StationSecret,
    load_secrets,
    parse_secrets,
    store_secrets,
)
from hazwatch.devices.station_secrets import migrate as migrate_secrets

log = logging.getLogger(__name__)

ROLES = ("producer", "transporter", "receiver")
READER_LOCATIONS = (
    "generation",
    "storage_in",
    "storage_out",
    "vehicle",
    "receiver_gate",
    "disposal",
)
SCALE_LOCATIONS = ("generation", "receiver_gate")
DEFAULT_STORAGE_LIMIT_KG = 3000.0  # GB 18597-2023: a 贮存点 holds at most 3 t
DEFAULT_STORAGE_LIMIT_DAYS = 365.0  # Solid Waste Law: one year for licensed storers
DEFAULT_ZONE_H = 8.0
FUNCTIONAL_ZONES = ("一类区", "二类区")  # GB 3095 4.1 (三类区 merged into 二类区 in 2012)
# The custody rules' tolerances are settings (hazwatch.streams.custody.settings), not facts
# about devices: a registry naming them is refused, not half-read.
CUSTODY_MOVED = (
    "{source}: the [custody] table is no longer part of the registry: the custody tolerances "
    "moved to the settings file's [custody] table (hazwatch --config FILE) or env "
    "HAZWATCH_CUSTODY__<NAME>; a site's storage_limit_kg / storage_limit_days stay here"
)

MIGRATIONS = [
    "CREATE TABLE registry_doc (version {id}, loaded_ns BIGINT NOT NULL, "
    "source {text} NOT NULL, body {text} NOT NULL)",
]


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str = ""
    role: str = "producer"
    lat: float | None = None
    lon: float | None = None
    storage_limit_kg: float = DEFAULT_STORAGE_LIMIT_KG
    storage_limit_days: float = DEFAULT_STORAGE_LIMIT_DAYS


@dataclass(frozen=True, slots=True)
class Reader:
    id: str
    site: str
    location: str
    # what it publishes on `read`: hazwatch's own payload, or an Impinj R700's or a Zebra FX's
    # own tag events (devices/rfid_vendors.py, docs/payloads.md)
    payload: str = HAZWATCH
    # readers at the same site whose RF fields overlap this one's (the two antennas of a door,
    # two adjacent doors): a tag both see at once is a cross-read, placed at the stronger
    # (streams/custody/rules.py classify). Symmetric: declaring it on one side is enough.
    overlaps: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scale:
    id: str
    site: str
    location: str


@dataclass(frozen=True, slots=True)
class Instrument:
    """A station's analyser of one pollutant, for the data audit (streams/air/audit.py): the
    smallest step it reports and the range it measures, in hazwatch's units (µg/m³; CO mg/m³)."""

    pollutant: str
    resolution: float | None = None
    range_low: float | None = None
    range_high: float | None = None


@dataclass(frozen=True, slots=True)
class Station:
    id: str
    site: str
    mn: str | None = None
    lat: float | None = None
    lon: float | None = None
    zone_h: float = DEFAULT_ZONE_H
    name: str | None = None  # as officers call it ("厂界东侧微站"): messages show it by the id
    # GB 3095 环境空气功能区: 一类区 takes the grade I limits, 二类区 grade II
    functional_zone: str = "二类区"
    # the station's HJ 212 MinInterval (minutes per interval record); None: from their spacing
    minute_interval_min: float | None = None
    # HJ 212 (docs/hj212.md): `open` takes packets without a PW (a lab only); `encrypted`: its
    # CP must arrive SM4-encrypted; `edition` it is set up to speak ("2017"/"2025"; each packet
    # is decoded by its own Flag all the same); `units`: (name, unit) it sends, e.g. pm25 ng/m3.
    # Its PW hash and SM4 key are Registry.secrets, never here.
    open: bool = False
    encrypted: bool = False
    edition: str | None = None
    units: tuple[tuple[str, str], ...] = ()
    # HJ 212-2025 CN 1001: the data logger's hardware serial (i23005-Info) it uploads to be
    # given its MN (CN 1002); unique across stations
    serial: str | None = None
    # [[station.instruments]]: resolution and range per pollutant (the audit's flatline floor
    # and out-of-range marks); a pollutant not listed gets the audit's defaults
    instruments: tuple[Instrument, ...] = ()


@dataclass(frozen=True, slots=True)
class Camera:
    id: str
    site: str
    watches: tuple[str, ...] = ()
    name: str | None = None  # as officers call it ("贮存间北门"): messages show it by the id


@dataclass(frozen=True, slots=True)
class Terminal:
    """A producer's site terminal (batch registrations, manifests): known, so it may alert."""

    id: str
    site: str


# the registry's table of each device family, by the topic family its devices publish under
FAMILY_TABLES = {
    "rfid": "readers",
    "scale": "scales",
    "terminal": "terminals",
    "air": "stations",
    "camera": "cameras",
}


@dataclass(frozen=True, slots=True)
class Registry:
    sites: dict[str, Site] = field(default_factory=dict)
    readers: dict[tuple[str, str], Reader] = field(default_factory=dict)
    scales: dict[tuple[str, str], Scale] = field(default_factory=dict)
    stations: dict[tuple[str, str], Station] = field(default_factory=dict)
    cameras: dict[tuple[str, str], Camera] = field(default_factory=dict)
    terminals: dict[tuple[str, str], Terminal] = field(default_factory=dict)
    # the HJ 212 stations' PW hashes and SM4 keys: never in to_document (registry show, API)
    secrets: dict[SecretKey, StationSecret] = field(default_factory=dict, repr=False)

    def knows(self, site: str, family: str, device: str) -> bool:
        """Whether the registry lists this device (of a topic family: rfid, scale, …)."""
        table = FAMILY_TABLES.get(family)
        return table is not None and (site, device) in getattr(self, table)

    def to_document(self) -> dict[str, Any]:
        """The TOML shape again (tables of entries), for storing and `registry show`."""
        return {
            # a site without a name has name "": left out, since "" is no valid name to load
            "site": [{k: v for k, v in asdict(s).items() if v != ""} for s in self.sites.values()],
            "reader": [{**asdict(r), "overlaps": list(r.overlaps)} for r in self.readers.values()],
            "scale": [asdict(s) for s in self.scales.values()],
            "station": [asdict(s) for s in self.stations.values()],
            "camera": [{**asdict(c), "watches": list(c.watches)} for c in self.cameras.values()],
            "terminal": [asdict(t) for t in self.terminals.values()],
        }

    def overlapping(self) -> frozenset[tuple[str, str, str]]:
        """(site, reader, reader) of every pair of readers declared overlapping, both ways."""
        pairs: set[tuple[str, str, str]] = set()
        for reader in self.readers.values():
            for other in reader.overlaps:
                pairs.add((reader.site, reader.id, other))
                pairs.add((reader.site, other, reader.id))
        return frozenset(pairs)

    def distance_km(self, site_a: str, site_b: str) -> float | None:
        a, b = self.sites.get(site_a), self.sites.get(site_b)
        if a is None or b is None or None in (a.lat, a.lon, b.lat, b.lon):
            return None
        assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
        return haversine_km(a.lat, a.lon, b.lat, b.lon)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


# ---------------------------------------------------------------- parsing and validation


class _Entry:
    """Reads one [[table]] entry, raising ConfigError naming file, entry and field."""

    def __init__(self, source: str, table: str, index: int, raw: object) -> None:
        self.where = f"{source}: [[{table}]] #{index + 1}"
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{self.where}: must be a table, got {type(raw).__name__}")
        self.raw = raw
        ident = raw.get("id")
        if isinstance(ident, str) and ident:
            self.where += f" (id {ident!r})"

    def fail(self, name: str, why: str) -> ConfigError:
        return ConfigError(f"{self.where}: field {name!r} {why}")

    def text(self, name: str, *, required: bool = True, default: str = "") -> str:
        value = self.raw.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, f"must be a non-empty string, got {value!r}")
        return value.strip()

    def choice(self, name: str, allowed: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(name, required=default is None, default=default or "")
        if value not in allowed:
            raise self.fail(name, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def number(
        self, name: str, default: float | None, lo: float, hi: float, *, strict_lo: bool = False
    ) -> float | None:
        value = self.raw.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(name, f"must be a number, got {value!r}")
        number = float(value)
        if not (lo < number if strict_lo else lo <= number) or number > hi:
            raise self.fail(name, f"must be between {lo:g} and {hi:g}, got {value!r}")
        return number

    def required_number(self, name: str, default: float, lo: float, hi: float) -> float:
        value = self.number(name, default, lo, hi)
        assert value is not None
        return value


def _tables(doc: Mapping[str, Any], source: str, name: str) -> list[Any]:
    value = doc.get(name, [])
    if not isinstance(value, list):
        raise ConfigError(f"{source}: {name!r} must be an array of tables ([[{name}]])")
    return value


INSTRUMENT_POLLUTANTS = ("so2", "no2", "pm10", "co", "o3", "pm25")


def _instruments(e: _Entry) -> tuple[Instrument, ...]:
    """A station's [[station.instruments]]: one per pollutant, range_low below range_high."""
    raw = e.raw.get("instruments")
    if not isinstance(raw, list):
        raise e.fail("instruments", "must be an array of tables ([[station.instruments]])")
    found: dict[str, Instrument] = {}
    for i, item in enumerate(raw):
        entry = _Entry(e.where, "instruments", i, item)
        unknown = sorted(set(item) - {"pollutant", "resolution", "range_low", "range_high"})
        if unknown:
            raise entry.fail(unknown[0], "is not an instrument field")
        pollutant = entry.choice("pollutant", INSTRUMENT_POLLUTANTS)
        if pollutant in found:
            raise entry.fail("pollutant", f"repeats the instrument of {pollutant}")
        low = entry.number("range_low", None, 0, 1e6)
        high = entry.number("range_high", None, 0, 1e6)
        if low is not None and high is not None and high <= low:
            raise entry.fail("range_high", f"must be above range_low {low:g}, got {high:g}")
        found[pollutant] = Instrument(
            pollutant, entry.number("resolution", None, 0, 1e4, strict_lo=True), low, high
        )
    return tuple(found.values())


def parse_registry(doc: Mapping[str, Any], source: str = "registry") -> Registry:
    """Validate a registry document (the parsed TOML); every problem names file, entry, field."""
    if "custody" in doc:
        raise ConfigError(CUSTODY_MOVED.format(source=source))
    known = {"site", "reader", "scale", "station", "camera", "terminal", "secrets"}
    for key in doc:
        if key not in known:
            raise ConfigError(
                f"{source}: unknown table {key!r} (known: {', '.join(sorted(known))})"
            )
    sites: dict[str, Site] = {}
    for i, raw in enumerate(_tables(doc, source, "site")):
        e = _Entry(source, "site", i, raw)
        ident = e.text("id")
        if ident in sites:
            raise e.fail("id", f"repeats site {ident!r}")
        lat, lon = e.number("lat", None, -90, 90), e.number("lon", None, -180, 180)
        if (lat is None) != (lon is None):
            raise e.fail("lat" if lat is None else "lon", "must be given with its partner")
        sites[ident] = Site(
            id=ident,
            name=e.text("name", required=False),
            role=e.choice("role", ROLES, "producer"),
            lat=lat,
            lon=lon,
            storage_limit_kg=e.required_number(
                "storage_limit_kg", DEFAULT_STORAGE_LIMIT_KG, 0, 1e9
            ),
            storage_limit_days=e.required_number(
                "storage_limit_days", DEFAULT_STORAGE_LIMIT_DAYS, 0, 36500
            ),
        )

    def site_of(e: _Entry) -> str:
        site = e.text("site")
        if site not in sites:
            raise e.fail("site", f"names site {site!r}, which no [[site]] entry declares")
        return site

    readers: dict[tuple[str, str], Reader] = {}
    overlap_entries: list[tuple[_Entry, Reader]] = []
    for i, raw in enumerate(_tables(doc, source, "reader")):
        e = _Entry(source, "reader", i, raw)
        reader = Reader(
            e.text("id"),
            site_of(e),
            e.choice("location", READER_LOCATIONS),
            payload=e.choice("payload", READER_PAYLOADS, HAZWATCH),
        )
        overlaps = e.raw.get("overlaps", [])
        if not isinstance(overlaps, list) or not all(
            isinstance(o, str) and o.strip() for o in overlaps
        ):
            raise e.fail("overlaps", "must be a list of reader ids")
        if overlaps:
            reader = replace(reader, overlaps=tuple(dict.fromkeys(o.strip() for o in overlaps)))
            overlap_entries.append((e, reader))
        if (reader.site, reader.id) in readers:
            raise e.fail("id", f"repeats reader {reader.id!r} at site {reader.site!r}")
        readers[(reader.site, reader.id)] = reader
    for e, reader in overlap_entries:  # once every reader is known: later ones may be named
        for other in reader.overlaps:
            if other == reader.id:
                raise e.fail("overlaps", f"names reader {other!r} itself")
            if (reader.site, other) not in readers:
                elsewhere = sorted(site for site, rid in readers if rid == other)
                where = f" (a reader of {', '.join(elsewhere)})" if elsewhere else ""
                raise e.fail(
                    "overlaps",
                    f"names reader {other!r}, not a reader of site {reader.site!r}{where}: "
                    "only readers at the same site can see one tag at once",
                )
    scales: dict[tuple[str, str], Scale] = {}
    for i, raw in enumerate(_tables(doc, source, "scale")):
        e = _Entry(source, "scale", i, raw)
        scale = Scale(e.text("id"), site_of(e), e.choice("location", SCALE_LOCATIONS))
        if (scale.site, scale.id) in scales:
            raise e.fail("id", f"repeats scale {scale.id!r} at site {scale.site!r}")
        scales[(scale.site, scale.id)] = scale
    stations: dict[tuple[str, str], Station] = {}
    mns: dict[str, str] = {}
    serials: dict[str, str] = {}
    for i, raw in enumerate(_tables(doc, source, "station")):
        e = _Entry(source, "station", i, raw)
        mn = e.text("mn", required=False) or None
        if mn is not None and (not mn.isalnum() or len(mn) > 24):
            raise e.fail("mn", f"must be up to 24 letters/digits (HJ 212 MN), got {mn!r}")
        station = Station(
            e.text("id"),
            site_of(e),
            mn,
            e.number("lat", None, -90, 90),
            e.number("lon", None, -180, 180),
            e.required_number("zone_h", DEFAULT_ZONE_H, -12, 14),
            e.text("name", required=False) or None,
            e.choice("functional_zone", FUNCTIONAL_ZONES, "二类区"),
            e.number("minute_interval_min", None, 1, 60),
        )
        if "instruments" in e.raw:
            station = replace(station, instruments=_instruments(e))
        station = replace(station, **_hj212_fields(e))
        if (station.site, station.id) in stations:
            raise e.fail("id", f"repeats station {station.id!r} at site {station.site!r}")
        if mn is not None:
            if mn in mns:
                raise e.fail("mn", f"{mn} is already the MN of station {mns[mn]!r}")
            mns[mn] = station.id
        if station.serial is not None:
            if station.serial in serials:
                raise e.fail(
                    "serial",
                    f"{station.serial} is already the serial of {serials[station.serial]!r}",
                )
            if station.mn is None:
                raise e.fail("serial", "needs the station's mn: CN 1002 gives the station its MN")
            serials[station.serial] = station.id
        stations[(station.site, station.id)] = station
    cameras: dict[tuple[str, str], Camera] = {}
    for i, raw in enumerate(_tables(doc, source, "camera")):
        e = _Entry(source, "camera", i, raw)
        site = site_of(e)
        watches = e.raw.get("watches", [])
        if not isinstance(watches, list) or not all(isinstance(w, str) for w in watches):
            raise e.fail("watches", "must be a list of reader ids")
        for reader_id in watches:
            if (site, reader_id) not in readers:
                raise e.fail("watches", f"names reader {reader_id!r}, not a reader of {site!r}")
        camera = Camera(e.text("id"), site, tuple(watches), e.text("name", required=False) or None)
        if (site, camera.id) in cameras:
            raise e.fail("id", f"repeats camera {camera.id!r} at site {site!r}")
        cameras[(site, camera.id)] = camera
    terminals: dict[tuple[str, str], Terminal] = {}
    for i, raw in enumerate(_tables(doc, source, "terminal")):
        e = _Entry(source, "terminal", i, raw)
        terminal = Terminal(e.text("id"), site_of(e))
        if (terminal.site, terminal.id) in terminals:
            raise e.fail("id", f"repeats terminal {terminal.id!r} at site {terminal.site!r}")
        terminals[(terminal.site, terminal.id)] = terminal
    secrets = parse_secrets(doc, source)
    for site, ident in secrets:
        if (site, ident) not in stations:
            raise ConfigError(f"{source}: secrets name station {site}/{ident}, not registered")
    return Registry(sites, readers, scales, stations, cameras, terminals, secrets)


EDITIONS = ("2017", "2025")


def _hj212_fields(e: _Entry) -> dict[str, Any]:
    """A station's HJ 212 fields: open, encrypted, edition, units (a table name = unit, or the
    stored [name, unit] pairs)."""
    from hazwatch.devices.hj212 import STORED_UNIT, unit_scale

    found: dict[str, Any] = {}
    for flag in ("open", "encrypted"):
        value = e.raw.get(flag, False)
        if not isinstance(value, bool):
            raise e.fail(flag, f"must be true or false, got {value!r}")
        found[flag] = value
    if e.raw.get("edition") is not None:
        found["edition"] = e.choice("edition", EDITIONS)
    serial = e.text("serial", required=False) or None
    if serial is not None and (not serial.isalnum() or len(serial) > 64):
        raise e.fail("serial", f"must be up to 64 letters/digits (i23005-Info), got {serial!r}")
    found["serial"] = serial
    raw_units = e.raw.get("units", {})
    pairs = raw_units.items() if isinstance(raw_units, Mapping) else raw_units
    units: list[tuple[str, str]] = []
    try:
        for name, unit in pairs:
            if unit_scale(str(name), str(unit)) is None:
                raise e.fail(
                    "units",
                    f"{name} = {unit!r}: not a unit hazwatch converts for it (names "
                    f"{', '.join(STORED_UNIT)}; ng/m3, ug/m3, mg/m3; kPa, hPa)",
                )
            units.append((str(name), str(unit)))
    except (TypeError, ValueError):
        raise e.fail("units", "must be a table of name = unit") from None
    found["units"] = tuple(units)
    return found


def load_file(path: Path) -> Registry:
    """Read and validate a registry TOML file."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"registry file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return parse_registry(doc, str(path))


# ---------------------------------------------------------------- persistence


def migrate(db: StateDB) -> None:
    db.migrate("registry", MIGRATIONS)
    migrate_secrets(db)


def save(db: StateDB, registry: Registry, source: str, now_ns: int) -> int:
    """Store a registry as the new current version; returns its version number."""
    migrate(db)
    body = json.dumps(registry.to_document(), ensure_ascii=False, sort_keys=True)
    with db.transaction():
        db.execute(
            "INSERT INTO registry_doc (loaded_ns, source, body) VALUES (?, ?, ?)",
            (now_ns, source, body),
        )
        store_secrets(db, registry.secrets)
        rows = db.query("SELECT MAX(version) FROM registry_doc")
    return int(rows[0][0])


def current_version(db: StateDB) -> int:
    rows = db.query("SELECT MAX(version) FROM registry_doc")
    return int(rows[0][0]) if rows and rows[0][0] is not None else 0


def load_stored(db: StateDB) -> tuple[int, Registry]:
    """The current stored registry and its version (0 and an empty registry when none)."""
    migrate(db)
    rows = db.query("SELECT version, body FROM registry_doc ORDER BY version DESC LIMIT 1")
    if not rows:
        return 0, Registry()
    doc = json.loads(rows[0][1])
    if doc.pop("custody", None) is not None:  # stored before the tolerances became settings
        log.warning(
            "the stored registry v%s has a [custody] table, now ignored: set the custody "
            "tolerances in the settings file's [custody] table, and load the registry again",
            rows[0][0],
        )
    stored = replace(parse_registry(doc, "state store"), secrets=load_secrets(db))
    return int(rows[0][0]), stored


# ---------------------------------------------------------------- decode context


class RegistryContext:
    """A DecodeContext over the stored registry, refreshed at most every `refresh_s` seconds.

    `batches` is the custody tracker's live EPC → batch map (shared, never copied).
    """

    def __init__(
        self,
        db: StateDB | None,
        registry: Registry | None = None,
        *,
        batches: Mapping[str, str] | None = None,
        refresh_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        accept_unregistered: bool = False,
        keys: KeyRotations | None = None,
    ) -> None:
        self._db = db
        # [hj212] accept_unregistered: while no registry lists a station, take every HJ 212
        # station as open; else an empty registry refuses them all (nothing to check against)
        self.accept_unregistered = accept_unregistered
        # the SM4 keys issued by CN 1014 (in the state store), laid over the secrets file's
        self.keys = keys if keys is not None or db is None else KeyRotations(db)
        self.version = 0
        self.current = registry or Registry()  # the registry at `version`
        self.batches: Mapping[str, str] = batches if batches is not None else {}
        self._refresh_s = refresh_s
        self._clock = clock
        self._next_check = 0.0
        self._by_mn: dict[str, tuple[str, str]] = {}
        self._by_serial: dict[str, tuple[str, str]] = {}
        self._watching: dict[tuple[str, str], tuple[str, ...]] = {}
        self._migrated = False
        self._set(self.current)
        if db is not None and registry is None:
            self.refresh(force=True)

    def _set(self, registry: Registry) -> None:
        self.current = registry
        self._by_mn = {st.mn: key for key, st in registry.stations.items() if st.mn}
        self._by_serial = {st.serial: key for key, st in registry.stations.items() if st.serial}
        watching: dict[tuple[str, str], list[str]] = {}
        for camera in registry.cameras.values():
            for reader in camera.watches:
                watching.setdefault((camera.site, reader), []).append(camera.id)
        self._watching = {key: tuple(ids) for key, ids in watching.items()}

    def refresh(self, *, force: bool = False) -> None:
        """Reload when the stored version changed (one cheap query, at most every refresh_s)."""
        now = self._clock()
        if self._db is None or (not force and now < self._next_check):
            return
        self._next_check = now + self._refresh_s
        if not self._migrated:
            migrate(self._db)
            self._migrated = True
        version = current_version(self._db)
        if version != self.version:
            self.version, registry = load_stored(self._db)
            self._set(registry)

    def _fresh(self) -> Registry:
        if self._db is not None and self._clock() >= self._next_check:
            self.refresh()
        return self.current

    def reader_location(self, site: str, reader: str) -> str | None:
        entry = self._fresh().readers.get((site, reader))
        return entry.location if entry else None

    def reader_payload(self, site: str, reader: str) -> str:
        entry = self._fresh().readers.get((site, reader))
        return entry.payload if entry else HAZWATCH

    def scale_location(self, site: str, scale: str) -> str | None:
        entry = self._fresh().scales.get((site, scale))
        return entry.location if entry else None

    def batch_of(self, epc: str) -> str | None:
        return self.batches.get(epc)

    def station_mn(self, site: str, station: str) -> str | None:
        entry = self._fresh().stations.get((site, station))
        return entry.mn if entry else None

    def station_zone_h(self, site: str, station: str) -> float:
        entry = self._fresh().stations.get((site, station))
        return entry.zone_h if entry else DEFAULT_ZONE_H

    def station_access(self, site: str, station: str) -> StationAccess:
        """What an HJ 212 packet of the station must present: an unregistered station is
        refused, a registered one needs its PW unless the registry marks it open. While no
        registry lists any station every station is refused, unless accept_unregistered."""
        registry = self._fresh()
        if not registry.stations and self.accept_unregistered:
            return OPEN_ACCESS
        entry = registry.stations.get((site, station))
        if entry is None:
            return StationAccess(registered=False)
        secret = registry.secrets.get((site, station), StationSecret())
        if self.keys is not None:
            secret = self.keys.overlay(site, station, secret)
        return StationAccess(
            registered=True,
            open=entry.open,
            secret=secret,
            encrypted=entry.encrypted,
            units=dict(entry.units),
        )

    def station(self, site: str, station: str) -> Station | None:
        """The station's entry (its zone, functional zone, interval), None when not registered."""
        return self._fresh().stations.get((site, station))

    def camera(self, site: str, camera: str) -> Camera | None:
        """The camera's entry (the readers at the door it watches), None when not registered."""
        return self._fresh().cameras.get((site, camera))

    def cameras_watching(self, site: str, reader: str) -> tuple[str, ...]:
        """The cameras whose `watches` name this reader (the door it reads at), in the
        registry's order; () when none does."""
        self._fresh()
        return self._watching.get((site, reader), ())

    def knows(self, site: str, family: str, device: str) -> bool:
        """Whether the registry lists this device (a device it does not list never alerts)."""
        return self._fresh().knows(site, family, device)

    def station_by_mn(self, mn: str) -> tuple[str, str] | None:
        """(site, station) of the station with this HJ 212 MN (for the TCP gateway)."""
        self._fresh()
        return self._by_mn.get(mn)

    def station_by_serial(self, serial: str) -> tuple[str, str] | None:
        """(site, station) whose data logger has this hardware serial (HJ 212-2025 CN 1001)."""
        self._fresh()
        return self._by_serial.get(serial)
