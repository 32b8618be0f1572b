"""Benchmark: can the camera agent analyse every frame of 25 fps 1080p and 720p on one core?

Never a test: it prints figures. Writes its own encoded files (mp4v), decodes and analyses them.

    .venv/bin/python -m bench.video [--seconds 6] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from hazwatch.edge.camera_agent import AgentConfig, CameraAgent, CaptureSource, EvidenceFolder
from hazwatch.edge.video_metrics import AnalyzerSettings, FrameAnalyzer
from hazwatch.simulators.video_scenes import write_scene

FPS = 25.0
SIZES = ((1920, 1080), (1280, 720))
# sensor noise σ (luma levels): 2 is a clean picture; 8 is a grainy one, more bits to decode
NOISE = (2.0, 8.0)


class NullSink:
    def __init__(self) -> None:
        self.messages = 0

    def frame(self, payload: dict[str, Any]) -> None:
        self.messages += 1

    def status(self, online: bool) -> None:
        pass


def decode_only(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n, start = 0, time.perf_counter()
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n, time.perf_counter() - start


def full_resolution_analysis(path: Path, frames: int) -> float:
    """The baseline: the same metrics without internal downscaling (frames per CPU second)."""
    big = AnalyzerSettings(detail_width=100_000, motion_width=100_000, scene_width=64)
    analyzer = FrameAnalyzer(big)
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    spent, n = 0.0, 0
    while n < frames:
        ok, image = cap.read()
        if not ok:
            break
        t = time.process_time()
        analyzer.analyse(image)
        spent += time.process_time() - t
        n += 1
    cap.release()
    return n / spent if spent else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each test file")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args()

    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})  # one core: decoding threads included
    cv2.setNumThreads(1)
    print(
        f"one core (cpu {cpu}), OpenCV {cv2.__version__}, {args.seconds:.0f} s files, {FPS:.0f} fps"
    )
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="hazwatch-bench-video-"))
    for (width, height), noise in ((size, n) for size in SIZES for n in NOISE):
        path = workdir / f"storage_{width}x{height}_noise{noise:.0f}.mp4"
        t = time.perf_counter()
        write_scene(
            path, "person", width=width, height=height, fps=FPS, seconds=args.seconds, noise=noise
        )
        written = time.perf_counter() - t
        size_mb = path.stat().st_size / 1e6
        n, decode_s = decode_only(path)
        sink = NullSink()
        with tempfile.TemporaryDirectory() as evidence_dir:
            config = AgentConfig(site="bench", camera=f"c{height}", rate_hz=2.0)
            agent = CameraAgent(
                config, CaptureSource(str(path)), sink, evidence=EvidenceFolder(Path(evidence_dir))
            )
            t = time.perf_counter()
            stats = agent.run()
            total_s = time.perf_counter() - t
        baseline = full_resolution_analysis(path, min(50, n))
        # CPU time is what one core spends whatever else runs on it; wall time is what it got
        decode_fps = stats.frames / stats.decode_cpu_s
        analysis_fps = stats.frames / stats.analysis_cpu_s
        cpu_fps = stats.frames / (stats.decode_cpu_s + stats.analysis_cpu_s)
        wall_fps = stats.frames / total_s
        keeps_up = cpu_fps >= FPS
        print(
            f"{width}x{height}, noise σ={noise:.0f}: {n} frames, {size_mb:.1f} MB mp4v "
            f"({size_mb * 8 / args.seconds:.0f} Mbit/s; written in {written:.1f} s)\n"
            f"  decode only (wall)    {n / decode_s:7.1f} fps\n"
            f"  in the agent, per CPU second: decode {decode_fps:7.1f} fps, "
            f"analysis {analysis_fps:7.1f} fps, together {cpu_fps:6.1f} fps "
            f"= {cpu_fps / FPS:4.2f}× real time ({1000 / cpu_fps:.1f} ms of the "
            f"{1000 / FPS:.0f} ms a frame allows)\n"
            f"  in the agent, wall clock on this (shared) machine: {wall_fps:6.1f} fps\n"
            f"  analysis without internal downscaling {baseline:7.1f} fps "
            f"(downscaled is {analysis_fps / baseline:4.1f}× faster)\n"
            f"  every frame of {FPS:.0f} fps on one core: {'YES' if keeps_up else 'NO'} "
            f"({stats.messages} messages at 2/s, events {stats.events})"
        )
    if args.keep is None:
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()
