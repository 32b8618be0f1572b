"""Synthetic camera scenes (numpy + OpenCV) of a hazardous-waste storage room, and files of them.

Never depend on anything but numpy/OpenCV: tests, the bench and the demo write real encoded video.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]

# name -> what happens (the tamper or event starts at `Scene.event_s`)
SCENES: dict[str, str] = {
    "static": "the storage room, nothing moves (sensor noise only)",
    "person": "a person walks across the room to the door and back",
    "forklift": "a forklift crosses the room",
    "lighting": "the lights dim to 40 % and come back, nothing moves",
    "covered": "someone covers the lens",
    "moved": "the camera is turned away (view shifted and rotated)",
    "blurred": "the lens is defocused / smeared",
    "dark": "the lights go out",
}


def _storage_room(width: int, height: int, rng: np.random.Generator) -> Image:
    """A textured room: wall with shelves and drums, tiled floor, a door on the right."""
    img = np.empty((height, width, 3), np.uint8)
    horizon = int(height * 0.55)
    img[:horizon] = (150, 160, 165)  # wall (BGR)
    img[horizon:] = (95, 105, 110)  # floor
    # floor tiles
    step = max(8, width // 16)
    for x in range(0, width, step):
        cv2.line(img, (x, horizon), (x + (x - width // 2) // 2, height), (70, 80, 85), 1)
    for k in range(1, 8):
        y = horizon + int((height - horizon) * (k / 8) ** 1.5)
        cv2.line(img, (0, y), (width, y), (70, 80, 85), 1)
    # shelves with drums and labels
    shelf_h = max(6, height // 40)
    for row in range(2):
        y = int(height * (0.18 + 0.2 * row))
        cv2.rectangle(
            img, (int(width * 0.05), y), (int(width * 0.7), y + shelf_h), (60, 70, 90), -1
        )
        for d in range(6):
            x0 = int(width * (0.07 + d * 0.105))
            color = (40, 90, 200) if (d + row) % 3 else (180, 120, 40)
            top = y - int(height * 0.12)
            cv2.rectangle(img, (x0, top), (x0 + int(width * 0.07), y), color, -1)
            cv2.rectangle(img, (x0, top), (x0 + int(width * 0.07), y), (20, 20, 20), 1)
            label_y = top + int(height * 0.04)
            lw, lh = int(width * 0.04), max(3, int(height * 0.025))
            cv2.rectangle(img, (x0 + 3, label_y), (x0 + 3 + lw, label_y + lh), (240, 240, 240), -1)
    # door (the storage entrance, watched by an RFID reader)
    dx0, dx1 = int(width * 0.78), int(width * 0.95)
    cv2.rectangle(img, (dx0, int(height * 0.15)), (dx1, horizon + 4), (70, 110, 140), -1)
    cv2.rectangle(img, (dx0, int(height * 0.15)), (dx1, horizon + 4), (30, 30, 30), 2)
    cv2.circle(
        img, (dx0 + (dx1 - dx0) // 6, int(height * 0.38)), max(2, width // 160), (0, 200, 230), -1
    )
    # warning sign
    sx, sy, ss = int(width * 0.8), int(height * 0.05), max(6, width // 30)
    pts = np.array([[sx, sy + ss], [sx + ss // 2, sy], [sx + ss, sy + ss]], np.int32)
    cv2.fillPoly(img, [pts], (0, 220, 255))
    # wall/floor grain so flat areas still have texture, like a real sensor's picture
    coarse = rng.normal(0, 6, (height // 2 + 1, width // 2 + 1, 1)).astype(np.float32)
    resized = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR)
    grain = cast(NDArray[np.float32], resized)[..., None]
    out: Image = np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)
    return out


def _person(img: Image, cx: int, foot_y: int, scale: float) -> None:
    h = int(scale)
    w = max(3, h // 4)
    body_top = foot_y - int(h * 0.8)
    cv2.rectangle(img, (cx - w // 2, body_top), (cx + w // 2, foot_y - h // 3), (50, 60, 30), -1)
    cv2.rectangle(img, (cx - w // 2, foot_y - h // 3), (cx - 1, foot_y), (40, 40, 40), -1)
    cv2.rectangle(img, (cx + 1, foot_y - h // 3), (cx + w // 2, foot_y), (40, 40, 40), -1)
    cv2.circle(img, (cx, body_top - h // 9), max(2, h // 9), (140, 170, 210), -1)
    cv2.circle(img, (cx, body_top - h // 7), max(2, h // 10), (0, 200, 255), -1)  # helmet


def _forklift(img: Image, x: int, floor_y: int, size: int) -> None:
    cv2.rectangle(img, (x, floor_y - size // 2), (x + size, floor_y), (0, 170, 240), -1)
    cv2.rectangle(
        img, (x + size // 6, floor_y - size), (x + size // 2, floor_y - size // 2), (30, 30, 30), 2
    )
    cv2.line(img, (x + size, floor_y - size), (x + size, floor_y), (20, 20, 20), max(2, size // 15))
    cv2.line(img, (x + size, floor_y - 2), (x + size + size // 2, floor_y - 2), (20, 20, 20), 2)
    for wx in (x + size // 5, x + 4 * size // 5):
        cv2.circle(img, (wx, floor_y), max(3, size // 8), (10, 10, 10), -1)


class Scene:
    """One synthetic scene: `frame(i)` is the i-th frame (BGR), deterministic for a seed."""

    def __init__(
        self,
        name: str,
        width: int = 320,
        height: int = 240,
        fps: float = 25.0,
        *,
        seed: int = 7,
        event_s: float = 1.0,
        noise: float = 2.0,
    ) -> None:
        if name not in SCENES:
            raise ValueError(f"unknown scene {name!r} (known: {', '.join(SCENES)})")
        self.name, self.width, self.height, self.fps = name, width, height, fps
        self.event_s = event_s
        self.noise = noise
        rng = np.random.default_rng(seed)
        # a larger canvas so a turned camera still sees "room", not black borders
        self._pad = (width // 4, height // 4)
        canvas = _storage_room(width + 2 * self._pad[0], height + 2 * self._pad[1], rng)
        self._canvas = canvas
        self._rng = np.random.default_rng(seed + 1)

    def _view(self, canvas: Image, moved: float) -> Image:
        px, py = self._pad
        if moved <= 0:
            return canvas[py : py + self.height, px : px + self.width].copy()
        cx, cy = canvas.shape[1] / 2, canvas.shape[0] / 2
        m = cv2.getRotationMatrix2D((cx, cy), 12.0 * moved, 1.0)
        m[0, 2] += -px * 0.9 * moved
        m[1, 2] += py * 0.5 * moved
        turned = cast(Image, cv2.warpAffine(canvas, m, (canvas.shape[1], canvas.shape[0])))
        return turned[py : py + self.height, px : px + self.width].copy()

    def frame(self, index: int) -> Image:
        t = index / self.fps
        after = t >= self.event_s
        canvas = self._canvas
        if self.name in ("person", "forklift"):
            canvas = canvas.copy()
            cw, ch = canvas.shape[1], canvas.shape[0]
            floor_y = int(ch * 0.8)
            if self.name == "person":
                phase = (t / 3.0) % 2.0
                pos = phase if phase <= 1 else 2 - phase
                cx = int(cw * (0.25 + 0.5 * pos))
                _person(canvas, cx, floor_y, self.height * 0.4)
            else:
                x = int((cw + 200) * ((t / 4.0) % 1.0)) - 100
                _forklift(canvas, x, floor_y, max(20, self.height // 4))
        view = self._view(canvas, 1.0 if (self.name == "moved" and after) else 0.0)
        gain = 1.0
        if self.name == "lighting":
            gain = 1.0 - 0.6 * max(
                0.0, math.sin(math.pi * min(1.0, max(0.0, (t - self.event_s) / 2.0)))
            )
        elif self.name == "dark" and after:
            gain = 0.06
        if self.name == "blurred" and after:
            sigma = max(2.0, self.width / 80)
            view = cast(Image, cv2.GaussianBlur(view, (0, 0), sigma))
        if self.name == "covered" and after:
            # a palm over the lens: dark, warm, almost flat
            yy = np.linspace(0, 1, self.height, dtype=np.float32)[:, None]
            base = 25 + 10 * yy
            view = np.dstack([base * 0.6, base * 0.8, base * 1.1]).astype(np.float32)
            view = np.broadcast_to(view, (self.height, self.width, 3)).astype(np.uint8)
        img = view.astype(np.float32) * gain
        if self.noise > 0:
            img += self._rng.normal(0, self.noise, (self.height, self.width, 1)).astype(np.float32)
        out: Image = np.clip(img, 0, 255).astype(np.uint8)
        return out

    def frames(self, count: int | None = None) -> Iterator[Image]:
        i = 0
        while count is None or i < count:
            yield self.frame(i)
            i += 1


def fourcc_for(path: Path) -> int:
    """mp4v for .mp4 (what this OpenCV build encodes; cameras send H.264), MJPG for .avi."""
    code = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    return cv2.VideoWriter.fourcc(*code)


def write_scene(
    path: Path,
    name: str,
    *,
    width: int = 320,
    height: int = 240,
    fps: float = 25.0,
    seconds: float = 4.0,
    seed: int = 7,
    event_s: float = 1.0,
    noise: float = 2.0,
) -> Path:
    """Write `seconds` of a scene to a real encoded video file with cv2.VideoWriter."""
    scene = Scene(name, width, height, fps, seed=seed, event_s=event_s, noise=noise)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), fourcc_for(path), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (no encoder for {path.suffix})")
    try:
        for frame in scene.frames(round(seconds * fps)):
            writer.write(frame)
    finally:
        writer.release()
    return path
