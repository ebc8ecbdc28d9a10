"""The web dashboard: server-rendered pages over the service (the API's own door), served by the same app.

`install(app, service, keys, secret)` mounts it under /dashboard: pages (pages.py, templates/), the sign-in
session (session.py), the live stream (sse.py) and vendored assets (static/vendor with manifest.json)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from starlette.responses import RedirectResponse

from hyperscope.dashboard.session import Sessions, sign_in_link
from hyperscope.service import KeyManager, Service


@dataclass(frozen=True)
class DashboardState:
    service: Service
    sessions: Sessions


def install(app: FastAPI, service: Service, keys: KeyManager, secret: bytes) -> None:
    from hyperscope.dashboard import pages

    app.state.dashboard = DashboardState(service, Sessions(secret, keys))
    app.include_router(pages.router)
    app.mount("/dashboard/static", pages.static, name="dashboard-static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard", 303)


__all__ = ["DashboardState", "install", "sign_in_link"]
