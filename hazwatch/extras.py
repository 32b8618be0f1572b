"""The optional extras of the distribution: what each must make importable, and what to install.

Never import an extra's packages here: find_spec only, so asking costs nothing at start.
"""

from __future__ import annotations

from importlib.util import find_spec

from hazwatch.base.errors import ConfigError

# extra (pyproject's [project.optional-dependencies]) -> the import names it provides
EXTRAS: dict[str, tuple[str, ...]] = {
    "camera": ("cv2", "numpy"),  # the OpenCV edge agent: hazwatch camera, hazwatch scene
    "demo": ("amqtt",),  # the demo's pure-Python broker when mosquitto is not installed
    "llrp": ("llrpkit",),  # the LLRP connector for LLRP-only RFID readers: hazwatch rfid-llrp
}


def missing(extra: str) -> list[str]:
    """The imports of `extra` that are not installed (empty: the extra is there)."""
    return [name for name in EXTRAS[extra] if find_spec(name) is None]


def install_hint(extra: str) -> str:
    return f"pip install 'hazwatch[{extra}]' (from a checkout: pip install '.[{extra}]')"


def require(extra: str, what: str) -> None:
    """ConfigError, one line naming the extra, when `what` cannot run without it."""
    lacking = missing(extra)
    if lacking:
        raise ConfigError(
            f"{what} needs the {extra} extra ({', '.join(lacking)} not installed):"
            f" {install_hint(extra)}"
        )
