"""Drive the setup wizard over HTTP for the package tests, like a browser would.

Standard library only (runs with any python3, e.g. in a container's network namespace via nsenter).

    python3 wizard_walk.py URL                      the token URL leads to the first step (200, a form)
    python3 wizard_walk.py URL --assets             ... and the stylesheet, setup.js and the German catalogue
    python3 wizard_walk.py URL --complete DOMAIN ADMIN PASSWORD
                                                    ... then every step, local CA, until the done page

Exit 0 on success; prints one line per request.
"""

from __future__ import annotations

import http.cookiejar
import re
import sys
import urllib.error
import urllib.parse
import urllib.request


class Browser:
    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, path: str, form: dict[str, str] | None = None) -> str:
        url = path if path.startswith("http") else self.base + path
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(url, data=data, timeout=30) as response:
                body = response.read().decode("utf-8", "replace")
                status, final = response.status, response.url
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            raise SystemExit(f"{'POST' if form else 'GET'} {url}: {exc.code}\n{body[:2000]}") from None
        print(f"{'POST' if form else 'GET'} {urllib.parse.urlsplit(url).path} -> {status} "
              f"{urllib.parse.urlsplit(final).path}")
        return body


def csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    if not found:
        raise SystemExit(f"no CSRF field on the page:\n{page[:2000]}")
    return found.group(1)


def expect(page: str, text: str, what: str) -> None:
    if text not in page:
        raise SystemExit(f"{what}: {text!r} not on the page:\n{page[:2000]}")


def main(argv: list[str]) -> int:
    browser = Browser(argv[0])
    page = browser.request(argv[0])  # the token buys a session cookie; redirected to /setup/language
    token = csrf(page)
    if "--assets" in argv:
        expect(browser.request("/static/parlour.css"), "{", "stylesheet")
        expect(browser.request("/static/setup.js"), "function", "setup.js")
        expect(browser.request("/setup/name?lang=de"), "Servername", "German translation")
    if "--complete" in argv:
        domain, admin, password = argv[argv.index("--complete") + 1:][:3]
        steps = [
            ("language", {"language": "en"}),
            ("name", {"domain": domain}),
            ("certificate", {"certificate": "local"}),
            ("admin", {"admin": admin, "password": password, "password2": password}),
            ("registration", {"registration": "invite"}),
            ("features", {}),
            ("database", {"database": "embedded"}),
            ("review", {}),
        ]
        for name, fields in steps:
            page = browser.request(f"/setup/{name}", {"csrf": token, **fields})
        expect(page, f"{admin}@{domain}", "done page")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
