"""CLI: `camera` (the OpenCV edge agent for one camera), `scene` (write a synthetic scene file).

Never let the agent die on a dropped stream or broker: it reconnects; Ctrl-C/SIGTERM flush and exit.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hazwatch import extras
from hazwatch.base.errors import ConfigError

if TYPE_CHECKING:  # OpenCV is the camera extra: imported by the commands that use it
    from hazwatch.edge.camera_agent import FrameSource, SourceFrame

SYNTHETIC = "synthetic:"


class SceneSource:
    """A synthetic scene as a live camera: frames generated on the fly, paced at its fps."""

    def __init__(self, scene_name: str, width: int, height: int, fps: float, seconds: float | None):
        from hazwatch.simulators.video_scenes import Scene

        self.scene = Scene(scene_name, width, height, fps, event_s=5.0)
        self.name = f"{SYNTHETIC}{scene_name}"
        self.live = False  # timed by frame index, paced by the agent (realtime)
        self.fps = fps
        self._limit = None if seconds is None else round(seconds * fps)
        self._index = 0

    def read(self) -> SourceFrame | None:
        from hazwatch.edge.camera_agent import SourceFrame

        if self._limit is not None and self._index >= self._limit:
            return None
        image = self.scene.frame(self._index)
        self._index += 1
        return SourceFrame(image, self._index / self.fps)

    def close(self) -> None:
        pass


def synthetic_source(spec: str, size: tuple[int, int], seconds: float | None) -> FrameSource:
    """The SceneSource a `--source synthetic:<scene>` names."""
    from hazwatch.simulators.video_scenes import SCENES

    name = spec[len(SYNTHETIC) :] or "person"
    if name not in SCENES:
        raise ConfigError(f"unknown synthetic scene {name!r} (known: {', '.join(SCENES)})")
    return SceneSource(name, size[0], size[1], 25.0, seconds)


def camera(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Video file, rtsp://… / http://… URL, device index (0), or synthetic:<scene>.",
        ),
    ],
    camera_id: Annotated[str, typer.Option("--camera", help="Camera id (topic device id).")],
    site: Annotated[str, typer.Option("--site", help="Site id (topic site).")],
    rate: Annotated[float, typer.Option("--rate", min=0.05, max=50, help="Messages/s.")] = 2.0,
    mqtt_url: Annotated[str | None, typer.Option("--mqtt-url", help="Broker URL.")] = None,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="hazwatch API for snapshot upload.")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", envvar="HAZWATCH_API_TOKEN", help="API token.")
    ] = None,
    evidence_dir: Annotated[
        Path | None, typer.Option("--evidence-dir", help="Local snapshot folder.")
    ] = None,
    evidence_mb: Annotated[int, typer.Option("--evidence-mb", min=1)] = 256,
    realtime: Annotated[
        bool | None, typer.Option("--realtime/--fast", help="Pace a recording at its fps.")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", help="Stop after this much video.")
    ] = None,
    detector: Annotated[
        str, typer.Option("--detector", help="none | blobs (moving blobs, no model).")
    ] = "none",
    synthetic_size: Annotated[str, typer.Option("--synthetic-size")] = "640x360",
) -> None:
    """Run the edge agent for one camera: every frame analysed, metadata published at --rate."""
    extras.require("camera", "hazwatch camera")
    from hazwatch.edge.camera_agent import AgentConfig, CameraProgram, CameraSetup
    from hazwatch.invocation import settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = settings()
    try:
        w, h = (int(v) for v in synthetic_size.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--synthetic-size must be WxH, got {synthetic_size!r}") from None
    is_synthetic = source.startswith(SYNTHETIC)
    setup = CameraSetup(
        agent=AgentConfig(
            site=site,
            camera=camera_id,
            rate_hz=rate,
            evidence_dir=evidence_dir or cfg.data_dir / "evidence" / f"{site}_{camera_id}",
            evidence_max_bytes=evidence_mb * 1024 * 1024,
            realtime=is_synthetic if realtime is None else realtime,
        ),
        source=source,
        mqtt_url=mqtt_url or cfg.mqtt_url,
        api_url=api_url or f"http://{cfg.api_host}:{cfg.api_port}",
        token=token if token is not None else cfg.api_token,
        seconds=seconds,
        detector=detector,
    )
    program = CameraProgram(
        setup, synthetic_source(source, (w, h), seconds) if is_synthetic else None
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: program.stop())
    started = time.monotonic()
    stats = program.run()
    wall = max(1e-9, time.monotonic() - started)
    uploader, evidence = program.uploader, program.evidence
    typer.echo(
        f"camera {site}/{camera_id}: {stats.frames} frames analysed "
        f"({stats.frames / wall:.1f}/s; decode {stats.decode_s:.1f} s, "
        f"analysis {stats.analysis_s:.1f} s), {stats.messages} messages, "
        f"{stats.snapshots} snapshots ({uploader.uploaded} uploaded, "
        f"{len(evidence.pending())} pending), {stats.gaps} frames lost, "
        f"{stats.reconnects} reconnects, events {stats.events}",
        err=True,
    )


def scene(
    name: Annotated[str, typer.Argument(help="Scene name.")],
    out: Annotated[Path, typer.Argument(help="Output file (.mp4 → mp4v, .avi → MJPG).")],
    size: Annotated[str, typer.Option("--size")] = "640x360",
    seconds: Annotated[float, typer.Option("--seconds")] = 10.0,
    event_s: Annotated[float, typer.Option("--event-at", help="When the tamper starts.")] = 3.0,
) -> None:
    """Write a synthetic storage-room scene to a video file (for the agent or a demo)."""
    extras.require("camera", "hazwatch scene")
    from hazwatch.simulators.video_scenes import SCENES, write_scene

    if name not in SCENES:
        raise ConfigError(f"unknown scene {name!r} (known: {', '.join(SCENES)})")
    w, h = (int(v) for v in size.lower().split("x"))
    write_scene(out, name, width=w, height=h, seconds=seconds, event_s=event_s)
    typer.echo(str(out))


def register(app: typer.Typer) -> None:
    """Registered by hazwatch.cli."""
    app.command("camera")(camera)
    app.command("scene")(scene)
