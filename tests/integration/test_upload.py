"""HTTP File Upload (XEP-0363): slots over XMPP, real PUT and GET over HTTP, size, quota and expiry."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import aiohttp
from yarl import URL

from appliance.modules.upload import UploadOptions
from tests.integration.harness import Harness, free_port, make_config, start_harness
from tests.integration.stanzas import condition, iq, iq_error

UPLOAD = "urn:xmpp:http:upload:0"


async def upload_harness(tmp_path: Path, **upload: object) -> Harness:
    port = free_port()
    cfg = make_config(tmp_path)
    host = cfg.hosts[0]
    options = replace(host.modules.of(UploadOptions), url_base=f"http://127.0.0.1:{port}", **upload)
    host = replace(host, modules=host.modules.with_options(options))
    return await start_harness(tmp_path, http=replace(cfg.http, port=port), hosts=(host,))


def request(name: str, size: int, ctype: str = "text/plain") -> str:
    return f"<request xmlns='{UPLOAD}' filename='{name}' size='{size}' content-type='{ctype}'/>"


async def slot(client, harness: Harness, name: str, size: int, ctype: str = "text/plain") -> tuple[str, str]:  # type: ignore[no-untyped-def]
    reply = await iq(client, "get", request(name, size, ctype), to=f"upload.{harness.domain}")
    found = reply.find(f"{{{UPLOAD}}}slot")
    return found.find(f"{{{UPLOAD}}}put").get("url"), found.find(f"{{{UPLOAD}}}get").get("url")


async def test_disco_identity_and_max_size(tmp_path: Path) -> None:
    harness = await upload_harness(tmp_path)
    try:
        client = await harness.client(await harness.user("alice"))
        disco = client.plugin["xep_0030"]
        items = await disco.get_items(harness.domain)
        assert f"upload.{harness.domain}" in {i[0] for i in items["disco_items"]["items"]}
        info = await disco.get_info(f"upload.{harness.domain}")
        assert ("store", "file", None, "HTTP File Upload") in info["disco_info"]["identities"]
        assert UPLOAD in info["disco_info"]["features"]
        values = {f.get("var"): f.findtext("{jabber:x:data}value") for f in info.xml.iter("{jabber:x:data}field")}
        assert values["FORM_TYPE"] == UPLOAD and int(values["max-file-size"]) == 100 * 1024**2
    finally:
        await harness.close()


async def test_put_then_get(tmp_path: Path) -> None:
    harness = await upload_harness(tmp_path)
    try:
        client = await harness.client(await harness.user("alice"))
        data = b"hello upload\n" * 1000
        put, get = await slot(client, harness, "notes file.txt", len(data))
        async with aiohttp.ClientSession() as http:
            async with http.get(get) as resp:
                assert resp.status == 404  # nothing uploaded yet
            async with http.put(put, data=b"x" * 10, headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status == 400  # wrong length
            async with http.put(put, data=data, headers={"Content-Type": "image/png"}) as resp:
                assert resp.status == 400  # wrong type
            async with http.put(put + "0", data=data, headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status == 403  # bad signature
            async with http.put(put, data=data, headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status == 201
            async with http.put(put, data=data, headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status == 409  # a slot takes one file
            async with http.get(get) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                assert await resp.read() == data
        assert (tmp_path / "uploads").is_dir()
    finally:
        await harness.close()


async def test_size_and_quota_errors(tmp_path: Path) -> None:
    harness = await upload_harness(tmp_path, max_file_size=4096, quota=10_000)
    try:
        client = await harness.client(await harness.user("alice"))
        error = await iq_error(client, "get", request("big.bin", 5000), to=f"upload.{harness.domain}")
        assert condition(error) == "not-acceptable"
        assert error.findtext(f"{{{UPLOAD}}}file-too-large/{{{UPLOAD}}}max-file-size") == "4096"
        for _ in range(2):
            await slot(client, harness, "part.bin", 4096)
        error = await iq_error(client, "get", request("part.bin", 4096), to=f"upload.{harness.domain}")
        assert condition(error) == "resource-constraint"
        other = await harness.client(await harness.user("bob"))
        await slot(other, harness, "part.bin", 4096)  # the quota is per account
        bad = await iq_error(client, "get", f"<request xmlns='{UPLOAD}' filename='a' size='-1'/>",
                             to=f"upload.{harness.domain}")
        assert condition(bad) == "bad-request"
    finally:
        await harness.close()


async def test_old_files_expire(tmp_path: Path) -> None:
    harness = await upload_harness(tmp_path, expiry=1.0, purge_interval=1.0)
    try:
        client = await harness.client(await harness.user("alice"))
        put, get = await slot(client, harness, "short.txt", 5)
        async with aiohttp.ClientSession() as http:
            async with http.put(put, data=b"12345", headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status == 201
            status = 200
            for _ in range(100):
                async with http.get(get) as resp:
                    status = resp.status
                if status == 404:
                    break
                await asyncio.sleep(0.2)
            assert status == 404
    finally:
        await harness.close()


async def test_one_slot_takes_one_upload_even_when_two_overlap(tmp_path: Path) -> None:
    """A first PUT sends half its body and waits; a second PUT to the same slot meanwhile is refused."""
    harness = await upload_harness(tmp_path)
    try:
        client = await harness.client(await harness.user("alice"))
        first, second = b"A" * 100_000, b"B" * 100_000
        put, get = await slot(client, harness, "race.txt", len(first))
        url = URL(put)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(f"PUT {url.raw_path_qs} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: text/plain\r\n"
                     f"Content-Length: {len(first)}\r\nConnection: close\r\n\r\n".encode() + first[:50_000])
        await writer.drain()
        for _ in range(500):  # until the first PUT is being written to its temporary file
            if list((tmp_path / "uploads").glob("*/*/.part-*")):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the first PUT never started")
        async with aiohttp.ClientSession() as http:
            async with http.put(put, data=second, headers={"Content-Type": "text/plain"}) as resp:
                assert resp.status == 409, "a second upload into a slot that is being written"
            writer.write(first[50_000:])
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 201"), answer
            async with http.get(get) as resp:
                assert await resp.read() == first
    finally:
        await harness.close()
