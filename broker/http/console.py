"""The web console at `/` and the two endpoints only it needed: bridge status and site settings.

The page (static/index.html, console.js, console.css, pcm-capture.js) is plain files
shipped in the package, served from here without a build step; it calls the same API
with the same keys as any client (the key field is kept in the browser's localStorage).
Routes, registered through `start_api(routers=[console_router()])`:

- `GET /`, `GET /console/{file}` and `/favicon.ico`: the page and its files (no key: the
  page holds none);
- `GET /api/v1/status`: services, sessions, counters, latency and recent errors
  (status.py), polled by the page for its charts;
- `GET /api/v1/sites`: every known site with its settings and whether it is busy;
- `PUT /api/v1/sites/{site}`: merge a JSON object into a site's settings, checked and
  stored by the core exactly as MQTT `settings/set` is (`Core.set_site`), which has the
  MQTT front publish the retained settings when MQTT runs.

They find the core as `app.state.core` (start_api's `state`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from ..config import MODES
from ..core.core import Core
from ..core.errors import SessionError
from ..core.payloads import check_site, parse_json
from .auth import ApiKey
from .errors import ApiError, HttpOnlyCode
from .status import bridge_status

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: The page's files and their media types; nothing else under static/ is served.
PAGE_FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "pcm-capture.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: The page is small and changes with the package: revalidate rather than cache stale copies.
NO_STALE = {"Cache-Control": "no-cache"}


def _core(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


def _site_entry(core: Core, site: str) -> dict[str, Any]:
    return {"site": site, "settings": core.store.get(site).public(core.config.default_mode),
            "busy": core.busy(site)}


def console_router() -> APIRouter:
    """The console's routes (a new router each call: one per app)."""
    router = APIRouter()
    started = time.monotonic()

    @router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type=PAGE_FILES["index.html"], headers=NO_STALE)

    @router.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        """Browsers ask for it on any page of the origin (an SVG answers as well)."""
        return FileResponse(STATIC_DIR / "favicon.svg", media_type=PAGE_FILES["favicon.svg"], headers=NO_STALE)

    @router.get("/console/{name}", include_in_schema=False)
    async def page_file(name: str) -> FileResponse:
        media_type = PAGE_FILES.get(name)
        if media_type is None:
            raise ApiError(f"no console file {name!r}", HttpOnlyCode.NOT_FOUND)
        return FileResponse(STATIC_DIR / name, media_type=media_type, headers=NO_STALE)

    @router.get("/api/v1/status", tags=["console"])
    async def status(request: Request, key: ApiKey) -> dict[str, Any]:
        """Services (health, models, voices, load), sessions, request and error counters,
        latency (count, sum, p50/p95 estimated from the histogram) and the recent errors;
        cumulative since start, so a client charts the difference between two calls."""
        return bridge_status(_core(request), started=started)

    @router.get("/api/v1/sites", tags=["console"])
    async def sites(request: Request, key: ApiKey) -> dict[str, Any]:
        """Every known site (--sites and those with stored settings): settings, busy."""
        core = _core(request)
        return {"default_mode": core.config.default_mode, "modes": list(MODES),
                "sites": [_site_entry(core, s) for s in core.sites()]}

    @router.put("/api/v1/sites/{site}", tags=["console"])
    async def set_site(site: str, request: Request, key: ApiKey) -> dict[str, Any]:
        """Merge a JSON object (`mode`, `voice`, `speaker`, `speed`, `language`; null deletes)
        into the site's settings, as MQTT `settings/set` does; answers the site's entry."""
        core = _core(request)
        try:
            check_site(site)
            update = parse_json(await request.body(), core.config.max_control_bytes)
        except SessionError as err:
            core.count_error(err, backend="settings", site=None)
            raise ApiError.of(err) from None
        try:
            await core.set_site(site, update)
        except SessionError as err:  # counted by the core
            raise ApiError.of(err) from None
        return _site_entry(core, site)

    return router
