"""The live page's files: everything they load is the API's own, and each vendored file is
accounted for with its licence (the browser tests check the same in a real browser)."""

from __future__ import annotations

import re

from api.routes.page import STATIC, STATIC_URL

PAGE = STATIC / "page"
VENDOR = STATIC / "vendor"


def test_the_page_loads_only_files_of_the_api() -> None:
    html = (PAGE / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs
    assert all(r.startswith((f"{STATIC_URL}/", "/docs")) for r in refs), refs
    for ref in refs:
        if ref.startswith(STATIC_URL):
            assert (STATIC / ref.removeprefix(f"{STATIC_URL}/")).is_file(), ref


def test_no_address_outside_in_our_own_files() -> None:
    for path in PAGE.iterdir():
        text = path.read_text()
        # the SVG namespace is a name, never fetched
        found = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not found, (path.name, found)


def test_every_vendored_file_is_listed_with_its_licence() -> None:
    rows = (VENDOR / "VERSIONS.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["package", "version", "files"]
    listed = {}
    for row in rows[1:]:
        package, version, files = row.split("\t")
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), row
        listed[package] = set(files.split())
    folders = {"uplot": "uplot", "swagger-ui-dist": "swagger-ui", "redoc": "redoc"}
    assert set(listed) == set(folders)
    for package, folder in folders.items():
        present = {p.name for p in (VENDOR / folder).iterdir()}
        assert present == listed[package], package
        assert "LICENSE" in present, package


def test_redoc_asks_no_cdn_for_its_logo() -> None:
    assert "cdn.redoc.ly" not in (VENDOR / "redoc" / "redoc.standalone.js").read_text()
