"""HTTP File Upload (XEP-0363): the service upload.<host> hands out slots; the web listener takes the files.

The service is its own disco entity (identity store/file, the max-file-size form), served in this
process through `ctx.serve_domain`. A slot's PUT URL carries an HMAC over the slot, size, type and an
expiry; web/upload.py checks it and stores the file in the state folder.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from lxml import etree

from appliance.core.api import OPTIONAL_DOMAIN, URL_BASE, Duration, IqRequest, Module, ModuleContext, Size, Xep, option
from appliance.core.events import StanzaEvent
from appliance.modules._util import element, serve_service_iq
from appliance.modules.disco import DiscoItems
from appliance.storage.api import UploadArea
from appliance.xmpp import forms
from appliance.xmpp.errors import StanzaError
from appliance.xmpp.forms import Field
from appliance.xmpp.ns import NS_DISCO_INFO, NS_DISCO_ITEMS, NS_UPLOAD

REQUEST = f"{{{NS_UPLOAD}}}request"
NAME = "HTTP File Upload"
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")


def file_too_large(max_size: int) -> StanzaError:
    """not-acceptable with <file-too-large><max-file-size/></file-too-large> (XEP-0363 §5)."""
    app = etree.Element(f"{{{NS_UPLOAD}}}file-too-large", nsmap={None: NS_UPLOAD})
    etree.SubElement(app, f"{{{NS_UPLOAD}}}max-file-size").text = str(max_size)
    return StanzaError.not_acceptable(f"The file is larger than {max_size} bytes", app_element=app)


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """HTTP file upload (XEP-0363): the service upload.<host>, files served by the web listener and kept in the state
    folder."""

    domain: str = option("", OPTIONAL_DOMAIN,
        "Address of the upload service; empty means upload.<host>. It must resolve to this server for clients.")
    url_base: str = option("", URL_BASE,
        "Start of the upload and download URLs; empty means https://<domain>:<http.tls_port> "
        "(http://<domain>:<http.port> when https is off).")
    max_file_size: int = option(100 * 1024**2, Size(1024, 64 * 1024**3), "Largest file accepted.")
    quota: int = option(1024**3, Size(1024, 1024 * 1024**3), "Total size of the files one account may keep.")
    expiry: float = option(30 * 86400.0, Duration(0, 3650 * 86400.0),
        "Files older than this are deleted; 0 keeps them.")
    slot_lifetime: float = option(300.0, Duration(1, 86400.0), "Time a client has to upload after asking for a slot.")
    purge_interval: float = option(3600.0, Duration(1, 86400.0), "How often expired files are deleted.")

    def service_domain(self, host: str) -> str:
        return self.domain or f"upload.{host}"


class Upload(Module):
    """Slots for local accounts within the maximum size and the per-account quota; expiry of old files."""

    name = "upload"
    options = UploadOptions
    depends = ("disco",)
    implements = (Xep(363, "1.1.0"),)

    def setup(self, ctx: ModuleContext[UploadOptions]) -> None:
        self.ctx = ctx
        self.options = opts = ctx.options
        self.domain = opts.service_domain(ctx.host)
        http = ctx.config.http
        self.url_base = opts.url_base or (
            f"https://{self.domain}:{http.tls_port}" if http.https else f"http://{self.domain}:{http.port}"
        )
        self.files = ctx.store(UploadArea)
        ctx.serve_domain(self.domain, self.on_stanza)
        self.items = ctx.optional(DiscoItems)
        if self.items is not None:
            self.items.add(self.domain, name=NAME)
        ctx.every(opts.purge_interval, self.purge, "expiry")

    async def stop(self) -> None:
        if self.items is not None:
            self.items.remove(self.domain)

    async def purge(self) -> None:
        removed = await self.files.purge(self.ctx.now(), self.options.expiry, self.options.slot_lifetime)
        if removed:
            self.ctx.log.info("deleted %d expired uploads", removed)

    # -- stanzas to upload.<host> -----------------------------------------------------------------

    async def on_stanza(self, event: StanzaEvent) -> None:
        await serve_service_iq(self.ctx, event, self.domain, {
            ("get", f"{{{NS_DISCO_INFO}}}query"): self.disco_info,
            ("get", f"{{{NS_DISCO_ITEMS}}}query"): self.disco_items,
            ("get", REQUEST): self.slot,
        })

    async def disco_info(self, request: IqRequest) -> etree._Element:
        if request.payload.get("node"):
            raise StanzaError.item_not_found("No such node")
        query = element(NS_DISCO_INFO)
        etree.SubElement(query, f"{{{NS_DISCO_INFO}}}identity", category="store", type="file", name=NAME)
        for var in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_UPLOAD):
            etree.SubElement(query, f"{{{NS_DISCO_INFO}}}feature", var=var)
        query.append(forms.build(NS_UPLOAD, [
            Field("max-file-size", "text-single", (str(self.options.max_file_size),)),
        ], type_="result"))
        return query

    async def disco_items(self, request: IqRequest) -> etree._Element:
        return element(NS_DISCO_ITEMS)

    async def slot(self, request: IqRequest) -> etree._Element:
        sender = request.from_jid
        if sender.local is None or sender.domain != self.ctx.host:
            raise StanzaError.forbidden(f"Only accounts of {self.ctx.host} may upload here")
        payload = request.payload
        name = (payload.get("filename") or "").strip()
        if not name or len(name) > 255 or "/" in name or "\\" in name or name in (".", ".."):
            raise StanzaError.bad_request("'filename' must be a plain file name")
        size_text = payload.get("size", "")
        if not size_text.isdigit() or int(size_text) <= 0:
            raise StanzaError.bad_request("'size' must be a positive number of bytes")
        size = int(size_text)
        content_type = (payload.get("content-type") or "").strip()
        if content_type and not _CONTENT_TYPE.match(content_type):
            raise StanzaError.bad_request("'content-type' is not a MIME type")
        if size > self.options.max_file_size:
            raise file_too_large(self.options.max_file_size)
        now = self.ctx.now()
        slot = await self.files.reserve(str(sender.bare()), name, size, content_type, now, self.options.quota)
        if slot is None:
            raise StanzaError.resource_constraint("Your upload quota is used up; old files expire over time")
        url = f"{self.url_base}/upload/{slot.path}/{quote(name, safe='')}"
        expires = math.ceil(now + self.options.slot_lifetime)
        answer = element(NS_UPLOAD, "slot")
        put_url = f"{url}?{urlencode({'expires': expires, 'sig': self.files.signature(slot, expires)})}"
        etree.SubElement(answer, f"{{{NS_UPLOAD}}}put", url=put_url)
        etree.SubElement(answer, f"{{{NS_UPLOAD}}}get", url=url)
        return answer


__all__ = ["Upload", "file_too_large"]
