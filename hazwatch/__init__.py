"""hazwatch: the composition root (CLI, settings, wiring of devices/ingest/streams/alerts/api).

Nothing outside this package may import it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hazwatch")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+src"
