"""HTTP File Upload (XEP-0363), web side: PUT a file to a signed slot URL, GET it back.

The slot was reserved by modules/upload.py in the same folder. A PUT must carry a valid, unexpired
signature and exactly the announced Content-Length (and Content-Type, when one was announced); the
body is streamed to a temporary file and moved in place only when complete.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time

from aiohttp import web

from appliance.storage.api import UploadSlot
from appliance.storage.uploads import UploadFiles
from appliance.web.keys import CONFIG

UPLOADS: web.AppKey[UploadFiles] = web.AppKey("uploads")
RECEIVING: web.AppKey[set[str]] = web.AppKey("uploads_receiving")  # slot paths with a PUT under way
ROUTE = "/upload/{owner}/{slot}/{name}"
CHUNK = 65536
_INLINE = ("image/", "audio/", "video/", "text/plain")
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, PUT, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def setup(app: web.Application) -> None:
    app[UPLOADS] = UploadFiles(app[CONFIG].server.state_dir / "uploads")
    app[RECEIVING] = set()
    app.router.add_route("PUT", ROUTE, put)
    app.router.add_route("GET", ROUTE, get)  # aiohttp answers HEAD through the GET route
    app.router.add_route("OPTIONS", ROUTE, options)


async def _slot(request: web.Request) -> UploadSlot:
    slot = await request.app[UPLOADS].load(request.match_info["owner"], request.match_info["slot"])
    if slot is None or slot.name != request.match_info["name"]:
        raise web.HTTPNotFound(headers=_CORS)
    return slot


async def options(_request: web.Request) -> web.Response:
    return web.Response(status=204, headers=_CORS)


async def put(request: web.Request) -> web.Response:
    files = request.app[UPLOADS]
    slot = await _slot(request)
    if not files.verify(slot, request.query.get("expires", ""), request.query.get("sig", ""), time.time()):
        raise web.HTTPForbidden(text="The upload URL is invalid or has expired", headers=_CORS)
    if slot.uploaded:
        raise web.HTTPConflict(text="This slot was used already", headers=_CORS)
    receiving = request.app[RECEIVING]
    if slot.path in receiving:  # checked and claimed with no await between: one PUT per slot at a time
        raise web.HTTPConflict(text="This slot is being uploaded already", headers=_CORS)
    receiving.add(slot.path)
    try:
        # Read again once claimed: a PUT that finished between our first read and the claim shows here.
        if (await _slot(request)).uploaded:
            raise web.HTTPConflict(text="This slot was used already", headers=_CORS)
        return await _receive(request, files, slot)
    finally:
        receiving.discard(slot.path)


async def _receive(request: web.Request, files: UploadFiles, slot: UploadSlot) -> web.Response:
    """Check the announced length and type, stream the body to a temporary file, move it in place."""
    if request.content_length != slot.size:
        raise web.HTTPBadRequest(text=f"Content-Length must be {slot.size}, as requested", headers=_CORS)
    sent_type = request.headers.get("Content-Type", "")
    if slot.content_type and sent_type.split(";")[0].strip().lower() != slot.content_type.lower():
        raise web.HTTPBadRequest(text=f"Content-Type must be {slot.content_type}, as requested", headers=_CORS)
    target = files.data_path(slot)
    temp = target.with_name(f".part-{secrets.token_hex(6)}")
    received = 0
    try:
        with open(temp, "wb") as out:
            async for chunk in request.content.iter_chunked(CHUNK):
                received += len(chunk)
                if received > slot.size:
                    raise web.HTTPRequestEntityTooLarge(max_size=slot.size, actual_size=received, headers=_CORS)
                await asyncio.to_thread(out.write, chunk)
        if received != slot.size:
            raise web.HTTPBadRequest(text="The upload ended early", headers=_CORS)
        await files.finish(slot, temp, time.time())
    finally:
        if temp.exists():
            os.unlink(temp)
    return web.Response(status=201, headers=_CORS)


async def get(request: web.Request) -> web.StreamResponse:
    slot = await _slot(request)
    if not slot.uploaded:
        raise web.HTTPNotFound(headers=_CORS)
    content_type = slot.content_type or "application/octet-stream"
    disposition = "inline" if content_type.startswith(_INLINE) else "attachment"
    headers = {
        **_CORS,
        "Content-Type": content_type,
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "public, max-age=31536000, immutable",
    }
    return web.FileResponse(request.app[UPLOADS].data_path(slot), headers=headers)


__all__ = ["setup"]
