"""Snapshot evidence: the bounded folder, the uploader's retry, and the `/api/snapshots` checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from hazwatch.alerts.store import AlertStore
from hazwatch.api.app import create_app
from hazwatch.api.deps import ApiContext
from hazwatch.base.errors import PayloadError
from hazwatch.base.statedb import StateDB
from hazwatch.edge.camera_agent import EvidenceFolder, SnapshotUploader, snapshot_jpeg
from hazwatch.parts import video as wiring_video
from hazwatch.streams.video.store import EvidenceStore, snapshot_dir

TOKEN = "s3cret"
T0 = 1_764_000_000 * 1_000_000_000


def jpeg(seed: int = 0) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    return snapshot_jpeg(image, site="jy-0012", camera="cam-2", ts_ns=T0, event="occlusion")


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    db = StateDB(f"sqlite:///{tmp_path / 'state.db'}")
    evidence = EvidenceStore(snapshot_dir(tmp_path))
    ctx = ApiContext(
        db=db,
        reader=None,  # type: ignore[arg-type]
        alerts=AlertStore(db),
        data_dir=tmp_path,
        api_token=TOKEN,
        evidence=evidence,
    )
    return TestClient(create_app(ctx, wiring_video.routers()))


def post(
    client: TestClient, name: str, body: bytes, sha: str | None = None, **headers: str
) -> httpx.Response:
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "image/jpeg", **headers}
    sha = sha or hashlib.sha256(body).hexdigest()
    return client.post(
        "/api/snapshots", params={"name": name, "sha256": sha}, content=body, headers=h
    )


def test_upload_then_serve_with_the_same_sha256(client: TestClient) -> None:
    body = jpeg()
    assert post(client, "a_occlusion.jpg", body).status_code == 201
    assert post(client, "a_occlusion.jpg", body).status_code == 200  # a retry is fine
    r = client.get("/api/snapshots/a_occlusion.jpg")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(r.content).hexdigest() == hashlib.sha256(body).hexdigest()
    assert r.headers["x-snapshot-sha256"] == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("name", "body", "sha", "headers", "status"),
    [
        ("b.jpg", jpeg(), None, {"Authorization": "Bearer wrong"}, 401),
        ("b.jpg", jpeg(), None, {"Content-Type": "image/png"}, 415),
        ("b.jpg", b"not a jpeg at all", None, {}, 415),
        ("b.jpg", jpeg(), "0" * 64, {}, 400),
        ("../b.jpg", jpeg(), None, {}, 400),
        ("b.exe", jpeg(), None, {}, 400),
        ("b.jpg", b"\xff\xd8\xff" + b"0" * (3 * 1024 * 1024), None, {}, 413),
    ],
)
def test_upload_refused(
    client: TestClient,
    name: str,
    body: bytes,
    sha: str | None,
    headers: dict[str, str],
    status: int,
) -> None:
    assert post(client, name, body, sha, **headers).status_code == status


def test_same_name_other_content_is_a_conflict(client: TestClient) -> None:
    assert post(client, "c.jpg", jpeg(1)).status_code == 201
    assert post(client, "c.jpg", jpeg(2)).status_code == 409


def test_unknown_snapshot_is_404(client: TestClient) -> None:
    assert client.get("/api/snapshots/nope.jpg").status_code == 404


def test_folder_drops_uploaded_first_and_refuses_rather_than_lose_unsent(tmp_path: Path) -> None:
    one = jpeg(1)
    folder = EvidenceFolder(tmp_path, max_bytes=int(len(one) * 2.5))
    assert folder.keep("s1.jpg", one) and folder.keep("s2.jpg", one)
    assert folder.keep("s3.jpg", one) is None  # full of unsent: refused, nothing lost
    assert folder.refused == 1
    folder.mark_sent(folder.pending_dir / "s1.jpg")
    assert folder.keep("s3.jpg", one)  # room made by dropping the uploaded s1
    assert sorted(p.name for p in folder.pending()) == ["s2.jpg", "s3.jpg"]


def test_uploader_retries_until_the_api_takes_it(client: TestClient, tmp_path: Path) -> None:
    folder = EvidenceFolder(tmp_path / "ev")
    folder.keep("d_occlusion.jpg", jpeg(3))
    uploader = SnapshotUploader(folder, "http://testserver", TOKEN)
    down = httpx.Client(transport=httpx.MockTransport(lambda req: httpx.Response(503)))
    assert uploader.run_once(down) is False
    assert [p.name for p in folder.pending()] == ["d_occlusion.jpg"]
    assert uploader.run_once(client) is True  # TestClient is an httpx.Client on the app
    assert (
        folder.pending() == [] and client.get("/api/snapshots/d_occlusion.jpg").status_code == 200
    )


def test_old_snapshots_go_unless_an_open_alert_cites_them(tmp_path: Path) -> None:
    import os
    import time

    from hazwatch.alerts.model import AlertSignal, Severity

    folder = tmp_path / "snapshots"
    folder.mkdir()
    now = time.time()
    for name, age_days in (("old.jpg", 400), ("cited.jpg", 400), ("new.jpg", 10)):
        path = folder / name
        path.write_bytes(b"\xff\xd8\xff")
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    store = AlertStore(StateDB(f"sqlite:///{tmp_path / 'state.db'}"))
    store.raise_alert(
        AlertSignal(
            "tamper_occlusion", "s/cam-1", Severity.MAJOR, "lens covered", "s", 1, {}, "cited.jpg"
        )
    )
    deleted = EvidenceStore(folder).prune(365 * 86400, now, store.open_evidence())
    assert deleted == ["old.jpg"]
    assert sorted(p.name for p in folder.iterdir()) == ["cited.jpg", "new.jpg"]
    assert EvidenceStore(tmp_path / "none").prune(1, now, set()) == []


def test_a_built_name_passes_the_check_and_hostile_names_do_not() -> None:
    """The snapshot name is the agent's and the service's contract (devices/camera.py)."""
    from hazwatch.devices.camera import Frame, check_snapshot_name, snapshot_name
    from hazwatch.devices.schema import validator

    name = snapshot_name("jy-0012", "cam-2", T0, 7, "occlusion")
    assert name == "jy-0012_cam-2_20251124T160000000Z_7_occlusion.jpg"
    assert check_snapshot_name(name) == name
    # topic ids may hold dots, and a long name is cut to its last 128 characters
    for digits in range(1, 17):
        built = snapshot_name("a." * 32, "c" * 64, T0, 10**digits, "scene_change")
        assert len(built) <= 128 and check_snapshot_name(built) == built
    dotted = snapshot_name("a..b", "c.", T0, 1, "motion_start")
    assert check_snapshot_name(dotted) == dotted

    hostile = [
        "../b.jpg",
        "..jpg",
        "a..jpg",
        "a/b.jpg",
        "a\\b.jpg",
        "/etc/x.jpg",
        ".hidden.jpg",
        "a\x00.jpg",
        "a.jpg\x00",
        "a.jpg\n",
        "x" * 125 + ".jpg",
        "é.jpg",
        "摄像头.jpg",
        "a.exe",
        ".jpg",
        "",
    ]
    parse = validator(Frame)
    for bad in hostile:
        with pytest.raises(ValueError, match="bad snapshot name"):
            check_snapshot_name(bad)
        frame = {"ts": T0 // 1_000_000, "seq": 1, "snapshot": {"name": bad, "sha256": "0" * 64}}
        with pytest.raises(PayloadError):
            parse(orjson.dumps(frame))
    with pytest.raises(ValueError, match="bad snapshot name"):
        snapshot_name("site/..", "cam-2", T0, 1, "occlusion")
