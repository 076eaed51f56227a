"""The live page at `/` and self-hosted `/docs` and `/redoc`: every browser file from the package.

Files live in api/static/ (the page in page/, third-party files in vendor/, see
api/static/vendor/VERSIONS.tsv and scripts/vendor), so the page, Swagger UI and ReDoc work on a
network without internet, as a demo stand's is. The HTML needs no key: it asks for one and sends
it as `Authorization: Bearer` to `/v1` itself.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "static"
STATIC_URL = "/static"
VENDOR_URL = f"{STATIC_URL}/vendor"
FAVICON_URL = f"{STATIC_URL}/page/favicon.svg"
# The page loads only its own files and talks only to this API; a browser enforces it, so a
# stray CDN link would fail loudly in the browser tests instead of working by luck online.
# uPlot styles its elements from script (CSSOM), which `style-src 'self'` allows.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def page() -> FileResponse:
    """The live page (DESIGN section 12)."""
    return FileResponse(
        STATIC / "page" / "index.html",
        media_type="text/html",
        headers={
            "Content-Security-Policy": PAGE_CSP,
            "Referrer-Policy": "no-referrer",
            # The HTML is tiny and names the script and style: always the installed version.
            "Cache-Control": "no-cache",
        },
    )


def install(app: FastAPI) -> None:
    """Serve the page, its files, and Swagger UI and ReDoc from the package, not a CDN.

    The app must be built with `docs_url=None, redoc_url=None`; the same paths are served here.
    """
    app.mount(STATIC_URL, StaticFiles(directory=STATIC), name="static")
    openapi_url = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: Swagger UI",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{VENDOR_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=FAVICON_URL,
            # Swagger UI's default validator is a public web service: no badge, no call out.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: ReDoc",
            redoc_js_url=f"{VENDOR_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=FAVICON_URL,
            with_google_fonts=False,
        )

    app.include_router(router)
