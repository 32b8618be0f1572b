"""The registry of device families: adding a family means a module in devices/ and a line here.

Never put parsing logic here; this only maps topic family names to their modules.
"""

from __future__ import annotations

from hazwatch.devices import air, camera, rfid, scale, terminal
from hazwatch.devices.family import Family

FAMILIES: dict[str, Family] = {
    spec.name: spec
    for spec in (
        rfid.FAMILY_SPEC,
        scale.FAMILY_SPEC,
        terminal.FAMILY_SPEC,
        air.FAMILY_SPEC,
        camera.FAMILY_SPEC,
    )
}
