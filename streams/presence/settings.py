"""The presence part's settings, in one frozen dataclass: its defaults are the defaults, its
constraints are checked where settings are read (hazwatch.settings composes it as `presence`:
the settings file's [presence] table, env HAZWATCH_PRESENCE__<NAME>).

Never read the environment or a file here: the composition root builds one and hands it in.

What a device's silence means depends on its family (docs/design-notes.md, "Device presence"):

- RFID readers, scales and terminals report events: a storage door's reader is silent while
  nothing passes, a generation point's scale between weighings, a producer's terminal between
  registrations. Their heartbeat is the MQTT keep-alive: a broker that hears nothing of a
  client for one and a half times its keep alive closes the connection "as if the network had
  failed" (MQTT 3.1.1 [MQTT-3.1.2-24], MQTT 5.0 §3.1.2.10) and publishes its will, the
  retained `{"online": false}` on its `status` topic (docs/payloads.md). So their silence
  limit is off (0) by default and `device_offline` comes from the will; a site whose readers
  send a heartbeat of their own onto hazwatch's topics (a Zebra FX heartbeat routed to the
  `read` topic comes every minute, docs/payloads.md; a periodic `status`) sets the limit to
  about three of its periods.
- Air stations report on a clock. HJ 212-2017 stations send real-time data (CN 2011) every
  RtdInterval (set by CN 1062; the standard's example is 30 s), minute data (CN 2051) every
  MinInterval (CN 1064; the standard's example is 10 min) and hourly data (CN 2061) once an
  hour; a station behind the TCP gateway has no MQTT connection of its own, so no will:
  silence is all there is. 30 minutes without its minute or real-time data is three of the
  standard's example minute intervals, and an hour already lost: an hour missing more than
  15 minutes has no valid mean (GB 3095-2012 wants 45, streams/air/aqi.py). A station that
  sends only hourly data (no real-time or minute data yet) is late after 90 minutes, its
  hourly packet half an hour overdue. Set air_silent_s above twice a longer MinInterval.
- Cameras publish frame metadata at `rate_hz` (2 per second, edge/camera_agent.py): 30 s is
  sixty messages missed, less than the agent's 45 s keep-alive will (keepalive=30).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import Field

NS_PER_S = 1_000_000_000
MONTH_S = 31 * 86400.0
# A silence limit: 0 turns the silence rule off for the family (the will still counts).
Limit = Annotated[float, Field(ge=0, le=MONTH_S)]


@dataclass(frozen=True, slots=True)
class PresenceSettings:
    """How long each family may be silent (receiver's clock) before `device_offline`."""

    rfid_silent_s: Limit = 0.0  # off: a door reader is quiet while nothing passes
    scale_silent_s: Limit = 0.0  # off: weighings come when containers do
    terminal_silent_s: Limit = 0.0  # off: registrations come when waste is made
    # an air station that has sent real-time or minute data (JSON readings, CN 2011, 2051)
    air_silent_s: Limit = 1800.0
    # an air station that has sent only hourly (CN 2061) or daily data
    air_hourly_silent_s: Limit = 5400.0
    # also what blind_read takes for "the camera is offline" (streams/video/rules.py)
    camera_silent_s: Limit = 30.0
