"""`/api/snapshots`: camera evidence JPEGs uploaded by edge agents, and served to officers.

Only HTTP here: the video part's EvidenceStore (streams/video/store.py) holds the files.
Never store a file whose name, type, size or sha256 does not check out, nor overwrite one.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel

from hazwatch.api.deps import ApiContext, Ctx, part_store, require_token
from hazwatch.api.params import errors
from hazwatch.devices.camera import check_snapshot_name
from hazwatch.streams.video.store import EvidenceConflict, EvidenceStore

router = APIRouter()

MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")
JPEG = {"schema": {"type": "string", "format": "binary"}}


class Stored(BaseModel):
    """What the server holds under `name` after an upload (201 new, 200 the same again)."""

    name: str
    sha256: str
    bytes: int


UPLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Stored, "description": "Already stored with this content (a retry)."},
    201: {"model": Stored, "description": "Stored, on disk."},
    **errors(400, 401, 409, 413, 415),
}
SERVE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The JPEG.",
        "content": {"image/jpeg": JPEG},
        "headers": {"X-Snapshot-Sha256": {"schema": {"type": "string", "pattern": SHA256.pattern}}},
    },
    **errors(400, 404),
}


def evidence(ctx: ApiContext) -> EvidenceStore:
    return part_store(ctx.evidence, "video")


def _check_name(name: str) -> str:
    try:
        return check_snapshot_name(name)
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None


@router.post(
    "/api/snapshots",
    dependencies=[Depends(require_token)],
    response_model=None,
    responses=UPLOAD_RESPONSES,
    openapi_extra={"requestBody": {"required": True, "content": {"image/jpeg": JPEG}}},
)
async def upload_snapshot(
    request: Request,
    ctx: Ctx,
    name: Annotated[str, Query(max_length=128)],
    sha256: Annotated[str, Query(min_length=64, max_length=64)],
) -> JSONResponse:
    """Body: the JPEG itself (`Content-Type: image/jpeg`); `name` and `sha256` in the query."""
    store = evidence(ctx)
    _check_name(name)
    if not SHA256.match(sha256):
        raise HTTPException(status_code=400, detail="sha256 must be 64 lowercase hex digits")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "image/jpeg":
        raise HTTPException(
            status_code=415, detail=f"content type must be image/jpeg, got {ctype!r}"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_SNAPSHOT_BYTES:
        raise HTTPException(status_code=413, detail=f"snapshot over {MAX_SNAPSHOT_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SNAPSHOT_BYTES:
            raise HTTPException(status_code=413, detail=f"snapshot over {MAX_SNAPSHOT_BYTES} bytes")
    if not body.startswith(b"\xff\xd8\xff"):
        raise HTTPException(status_code=415, detail="body is not a JPEG (no SOI marker)")
    actual = hashlib.sha256(body).hexdigest()
    if actual != sha256:
        raise HTTPException(status_code=400, detail=f"sha256 mismatch: body is {actual}")
    try:
        created = store.put(name, bytes(body))
    except EvidenceConflict as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return JSONResponse(
        {"name": name, "sha256": actual, "bytes": len(body)}, status_code=201 if created else 200
    )


@router.get(
    "/api/snapshots/{name}",
    response_class=FileResponse,
    responses=SERVE_RESPONSES,
)
def get_snapshot(name: Annotated[str, PathParam(max_length=128)], ctx: Ctx) -> FileResponse:
    path = evidence(ctx).find(_check_name(name))
    if path is None:
        raise HTTPException(status_code=404, detail=f"no snapshot {name!r}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return FileResponse(
        path,
        media_type="image/jpeg",
        headers={"X-Snapshot-Sha256": digest, "Cache-Control": "private, max-age=3600"},
    )
