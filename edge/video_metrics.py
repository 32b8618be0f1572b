"""Per-frame video metrics at the edge (OpenCV + numpy): luma, focus, motion, cover, view change.

Never keep pixels beyond the reference this analyser needs, and never read a clock or do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class AnalyzerSettings:
    """How a frame is looked at. Widths are the internal analysis sizes (aspect kept)."""

    detail_width: int = 640  # sharpness and occlusion: fine enough that defocus shows
    motion_width: int = 320  # background subtraction
    scene_width: int = 64  # view fingerprint for scene_change
    motion_history: int = 250  # MOG2 frames (10 s at 25 fps)
    motion_var_threshold: float = 25.0
    motion_warmup_frames: int = 3  # the subtractor knows no background before this
    occlusion_grid: int = 4  # cells per side
    occlusion_cell_std: float = 6.0  # a cell flatter than this (0–255 luma) shows nothing
    occlusion_min_textured: int = 4  # fewer textured reference cells: judge cells absolutely
    reference_adapt: float = 0.02  # how fast the reference follows slow, small changes
    reference_adapt_below: float = 0.1  # only while scene_change is under this
    # edge events (on, off) with hysteresis
    motion_on: float = 0.01
    motion_off: float = 0.004
    motion_quiet_frames: int = 25  # below `motion_off` this long ends a motion episode
    occlusion_on: float = 0.6
    occlusion_off: float = 0.3
    scene_change_on: float = 0.35
    scene_change_off: float = 0.2
    defocus_ratio_on: float = 0.35  # focus below this fraction of the reference focus
    defocus_ratio_off: float = 0.6


@dataclass(frozen=True, slots=True)
class FrameMetrics:
    """What one frame says. `sharpness` is the variance of the Laplacian at `detail_width`."""

    width: int
    height: int
    brightness: float  # mean luma 0–255
    sharpness: float
    motion: float  # fraction of pixels that moved (0–1)
    occlusion: float  # fraction of the view that went blank (0–1)
    scene_change: float  # 1 − correlation with the reference view (0–1)
    focus_ratio: float  # contrast-normalised sharpness / reference's (1 = as sharp as ever)


def _resize(gray: Image, width: int) -> Image:
    h, w = gray.shape[:2]
    if w <= width:
        return gray
    height = max(1, round(h * width / w))
    return cast(Image, cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA))


def to_gray(frame: Image) -> Image:
    if frame.ndim == 2:
        return frame
    return cast(Image, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))


def _cell_std(gray: Image, grid: int) -> NDArray[np.float64]:
    h, w = gray.shape
    ch, cw = h // grid, w // grid
    cells = gray[: ch * grid, : cw * grid].reshape(grid, ch, grid, cw).astype(np.float32)
    result: NDArray[np.float64] = cells.std(axis=(1, 3)).astype(np.float64).ravel()
    return result


def _fingerprint(gray: Image, width: int) -> NDArray[np.float32]:
    tiny = _resize(gray, width).astype(np.float32)
    return cast(NDArray[np.float32], cv2.GaussianBlur(tiny, (5, 5), 0))


def _correlation(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    da = a - float(a.mean())
    db = b - float(b.mean())
    denom = float(np.sqrt(float((da * da).sum()) * float((db * db).sum())))
    if denom < 1e-6:
        return 0.0
    return float((da * db).sum()) / denom


class FrameAnalyzer:
    """Analyses every frame of one camera; keeps the background model and the reference view."""

    def __init__(self, settings: AnalyzerSettings | None = None) -> None:
        self.settings = settings or AnalyzerSettings()
        s = self.settings
        self._subtractor: Any = cv2.createBackgroundSubtractorMOG2(
            history=s.motion_history, varThreshold=s.motion_var_threshold, detectShadows=False
        )
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.frames = 0
        self.motion_mask: Image | None = None
        self._ref_view: NDArray[np.float32] | None = None
        self._ref_cells: NDArray[np.float64] | None = None
        self._ref_focus: float | None = None

    def reset_reference(self) -> None:
        """Accept the current view as normal (after an operator re-aimed the camera)."""
        self._ref_view = None
        self._ref_cells = None
        self._ref_focus = None

    def analyse(self, frame: Image) -> FrameMetrics:
        s = self.settings
        height, width = frame.shape[:2]
        gray = to_gray(frame)
        detail = _resize(gray, s.detail_width)
        brightness = float(detail.mean())
        lap = cv2.Laplacian(detail, cv2.CV_32F)
        sharpness = float(lap.var())
        variance = float(detail.var())
        focus = sharpness / (variance + 1.0)

        small = _resize(detail, s.motion_width)
        # gain-normalise so a light switched on is not "motion" (a person is still)
        gain = min(4.0, max(0.25, 128.0 / max(float(small.mean()), 1.0)))
        normalised = cv2.convertScaleAbs(small, alpha=gain)
        mask = self._subtractor.apply(normalised)
        mask = cast(Image, cv2.morphologyEx(mask, cv2.MORPH_OPEN, self._kernel))
        self.motion_mask = mask
        motion = 0.0
        if self.frames >= s.motion_warmup_frames:
            motion = float(cv2.countNonZero(mask)) / float(mask.size)
        self.frames += 1

        cells = _cell_std(detail, s.occlusion_grid)
        view = _fingerprint(small, s.scene_width)
        blank_reference = (
            self._ref_cells is not None
            and int((self._ref_cells >= s.occlusion_cell_std).sum()) < s.occlusion_min_textured
        )
        shows_something = int((cells >= s.occlusion_cell_std).sum()) >= s.occlusion_min_textured
        if blank_reference and shows_something:
            self.reset_reference()  # started covered or dark: the first real view is the reference
        if self._ref_view is None or self._ref_cells is None or self._ref_focus is None:
            self._ref_view, self._ref_cells, self._ref_focus = view, cells, focus
        blank = cells < s.occlusion_cell_std
        textured = self._ref_cells >= s.occlusion_cell_std
        if int(textured.sum()) >= s.occlusion_min_textured:
            occlusion = float((blank & textured).sum()) / float(textured.sum())
        else:
            occlusion = float(blank.mean())
        scene_change = min(1.0, max(0.0, 1.0 - _correlation(view, self._ref_view)))
        focus_ratio = focus / self._ref_focus if self._ref_focus > 1e-9 else 1.0

        if scene_change < s.reference_adapt_below and occlusion < s.occlusion_off:
            a = s.reference_adapt
            self._ref_view = (1 - a) * self._ref_view + a * view
            self._ref_cells = (1 - a) * self._ref_cells + a * cells
            if focus_ratio > s.defocus_ratio_off:  # never learn a blurred lens as normal
                self._ref_focus = (1 - a) * self._ref_focus + a * focus
        return FrameMetrics(
            width=width,
            height=height,
            brightness=brightness,
            sharpness=sharpness,
            motion=motion,
            occlusion=occlusion,
            scene_change=scene_change,
            focus_ratio=focus_ratio,
        )


class EdgeEvents:
    """Metrics to edge events with hysteresis: motion_start, occlusion, scene_change, defocus.

    An event fires once when its condition starts, and again only after it has ended.
    """

    PRIORITY = ("occlusion", "scene_change", "defocus", "motion_start")

    def __init__(self, settings: AnalyzerSettings | None = None) -> None:
        self.settings = settings or AnalyzerSettings()
        self.active: dict[str, bool] = dict.fromkeys(self.PRIORITY, False)
        self._quiet = 0

    def update(self, m: FrameMetrics) -> list[str]:
        s = self.settings
        started: list[str] = []

        def edge(name: str, on: bool, off: bool) -> None:
            if not self.active[name] and on:
                self.active[name] = True
                started.append(name)
            elif self.active[name] and off:
                self.active[name] = False

        edge("occlusion", m.occlusion >= s.occlusion_on, m.occlusion < s.occlusion_off)
        covered = self.active["occlusion"]
        edge(
            "scene_change",
            not covered and m.scene_change >= s.scene_change_on,
            m.scene_change < s.scene_change_off,
        )
        edge(
            "defocus",
            not covered and m.focus_ratio < s.defocus_ratio_on,
            m.focus_ratio > s.defocus_ratio_off,
        )
        self._quiet = self._quiet + 1 if m.motion < s.motion_off else 0
        edge("motion_start", m.motion >= s.motion_on, self._quiet >= s.motion_quiet_frames)
        return [name for name in self.PRIORITY if name in started]
