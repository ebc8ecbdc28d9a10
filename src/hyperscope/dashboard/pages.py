"""The dashboard's routes: sign-in, the pages (each also answers htmx with its main fragment), the heatmap
cell's positions, the freshness label and the live stream. Every read goes through the service (views.py)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from jinja2 import Environment, PackageLoader, Undefined, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.staticfiles import StaticFiles

from hyperscope.dashboard import history, sse, views
from hyperscope.dashboard.session import COOKIE, SCOPE, SESSION_SECONDS, Sessions
from hyperscope.domain.cohorts import SEGMENTS_BY_ID
from hyperscope.domain.timefmt import iso_ms, now_ms
from hyperscope.errors import AuthError, HyperscopeError
from hyperscope.service import ApiKey, LatestUpdate, Service

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
NAV = (
    ("market", "/dashboard", "Market"),
    ("perps", "/dashboard/perps", "Perps"),
    ("cohorts", "/dashboard/cohorts", "Cohorts"),
    ("heatmap", "/dashboard/heatmap", "Heatmap"),
    ("leaderboards", "/dashboard/leaderboards", "Leaderboards"),
)


def _missing(value: Any) -> bool:
    """None, or a field the state update does not have (a Jinja Undefined): shown as a dash."""
    return value is None or isinstance(value, Undefined)


def _money(value: Any) -> str:
    if _missing(value):
        return "–"
    x = float(value)
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= size:
            return f"${x / size:,.2f}{unit}"
    return f"${x:,.2f}"


def _pct(value: Any, digits: int = 1) -> str:
    return "–" if _missing(value) else f"{100 * float(value):.{digits}f}%"


def _num(value: Any, digits: int = 0) -> str:
    return "–" if _missing(value) else f"{float(value):,.{digits}f}"


templates = Environment(loader=PackageLoader("hyperscope.dashboard"), autoescape=select_autoescape(), trim_blocks=True)
templates.filters.update(money=_money, pct=_pct, num=_num, iso=lambda ms: iso_ms(ms) if ms is not None else "–")
templates.globals.update(nav=NAV, segments_by_id=SEGMENTS_BY_ID, quote=quote)

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def _state(request: Request) -> tuple[Service, Sessions]:
    dash = request.app.state.dashboard
    return dash.service, dash.sessions


def _html(body: str, status: int = 200, **headers: str) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**HEADERS, **headers})


def _signed_in(request: Request) -> ApiKey | None:
    _, sessions = _state(request)
    return sessions.key_of(request.cookies.get(COOKIE))


def _page(
    request: Request, template: str, active: str, build: Callable[[Service, LatestUpdate], dict[str, Any]]
) -> Response:
    """A page (or, for htmx, its main fragment) for a signed-in key allowed the dashboard."""
    key = _signed_in(request)
    if key is None:
        return RedirectResponse(f"/dashboard/sign-in?next={quote(request.url.path)}", 303, headers=HEADERS)
    svc, _ = _state(request)
    update = svc.latest()  # one state update for the whole page: its numbers and its freshness label
    fragment = request.headers.get("HX-Request") == "true"
    page = {"request": request, "active": active, "key": key, "fragment": fragment}
    if not key.allows(SCOPE):
        fresh = views.freshness(update, now_ms())
        error = templates.get_template("error.html")
        return _html(error.render(message="this API key has no 'metrics' scope", fresh=fresh, **page), 403)
    try:
        data = _built(request, template, update, lambda: build(svc, views.latest(update)))
        status = 200
        name = template
    except HyperscopeError as e:
        data, status, name = {"message": e.message}, getattr(e, "status", 400), "error.html"
    html = templates.get_template(name).render(fresh=views.freshness(update, now_ms()), **page, **data)
    return _html(html, status)


PAGE_CACHE_ENTRIES = 128  # pages' data kept per state update (the same for every signed-in key)
CELL_CACHE_ENTRIES = 4  # of which heatmap cells' positions (up to views.CLICK_THROUGH_MAX rows each)
UNCACHED = frozenset({"wallet.html"})  # unbounded in number (wallets)
_cache: OrderedDict[tuple[str, str, int], dict[str, Any]] = OrderedDict()
_cache_lock = threading.Lock()


def _built(
    request: Request, template: str, update: LatestUpdate | None, build: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """A page's data, built once per state update and URL (a page's data depends on nothing else): the first
    view after an update pays for the reads, the others reuse them until the next update."""
    if update is None or template in UNCACHED:
        return build()
    key = (template, f"{request.url.path}?{request.url.query}", update.height)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    data = build()
    with _cache_lock:
        _cache[key] = data
        while len(_cache) > PAGE_CACHE_ENTRIES:
            _cache.popitem(last=False)
        cells = [k for k in _cache if k[0] == "cell.html"]
        for old in cells[: max(0, len(cells) - CELL_CACHE_ENTRIES)]:  # the least recently used cells go first
            del _cache[old]
    return data


@router.get("/sign-in")
def sign_in_form(request: Request, link: str | None = None, next: str = "/dashboard") -> Response:  # noqa: A002
    _, sessions = _state(request)
    target = next if next.startswith("/dashboard") and "//" not in next else "/dashboard"
    if link is not None:
        key = sessions.redeem(link)
        if key is None:
            message = "this sign-in link is invalid, expired or already used; sign in with your API key"
            return _html(templates.get_template("signin.html").render(message=message, next=target), 401)
        return _with_session(sessions, key, target, request)
    return _html(templates.get_template("signin.html").render(message=None, next=target))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    _, sessions = _state(request)
    body = await _bounded_body(request, SIGN_IN_MAX_BYTES)
    if body is None:
        page = templates.get_template("signin.html").render(message="that form is too large", next="/dashboard")
        return _html(page, 413)
    form = parse_qs(body.decode("utf-8", "replace"))
    token = (form.get("key") or [""])[0].strip()
    target = (form.get("next") or ["/dashboard"])[0]
    target = target if target.startswith("/dashboard") and "//" not in target else "/dashboard"
    try:
        key = sessions.keys.authenticate(token)
    except AuthError:
        page = templates.get_template("signin.html").render(message="unknown or revoked API key", next=target)
        return _html(page, 401)
    return _with_session(sessions, key, target, request)


SIGN_IN_MAX_BYTES = 4096  # a key and a path: anything larger is refused before it is read


async def _bounded_body(request: Request, limit: int) -> bytes | None:
    """The request body, read no further than `limit` bytes (None when it is longer): a large body is never
    held in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _with_session(sessions: Sessions, key: ApiKey, target: str, request: Request) -> Response:
    response = RedirectResponse(target, 303, headers=HEADERS)
    response.set_cookie(
        COOKIE,
        sessions.cookie_for(key),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/sign-out")
def sign_out() -> Response:
    response = RedirectResponse("/dashboard/sign-in", 303, headers=HEADERS)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("")
def market(request: Request, range: str = "1d") -> Response:  # noqa: A002
    return _page(request, "market.html", "market", lambda s, u: {"range": range, **views.market(s, u, range)})


@router.get("/perps")
def perps(
    request: Request, dex: str | None = None, segment: int | None = None, sort: str = "oi", desc: bool = True
) -> Response:
    def build(svc: Service, u: LatestUpdate) -> dict[str, Any]:
        data = views.perps(svc, u, dex, segment, sort, desc)
        return {**data, "dex": dex, "segment": segment, "sort": sort, "desc": desc}

    return _page(request, "perps.html", "perps", build)


@router.get("/coin/{name}")
def coin(request: Request, name: str, range: str = "1d") -> Response:  # noqa: A002
    return _page(request, "coin.html", "perps", lambda s, u: {"range": range, **views.coin(s, u, name, range)})


@router.get("/coin/{name}/liquidations")
def liquidations(request: Request, name: str, height: int | None = None) -> Response:
    return _page(request, "liquidations.html", "perps", lambda s, u: history.liquidations(s, u, name, height))


@router.get("/cohorts")
def cohorts(request: Request) -> Response:
    return _page(request, "cohorts.html", "cohorts", lambda s, u: {"cards": views.cohorts(s, u)})


@router.get("/cohorts/migration")
def migration(request: Request, range: str = "1d", category: str = "pnl") -> Response:  # noqa: A002
    return _page(request, "migration.html", "cohorts", lambda s, u: history.migration(s, u, range, category))


@router.get("/cohorts/{segment}")
def cohort(request: Request, segment: int, range: str = "7d") -> Response:  # noqa: A002
    return _page(
        request,
        "cohort.html",
        "cohorts",
        lambda s, u: {"range": range, **views.cohort(s, u, segment, range)},
    )


@router.get("/heatmap")
def heatmap(request: Request, openedWithin: str = "all", height: int | None = None) -> Response:  # noqa: N803
    return _page(request, "heatmap.html", "heatmap", lambda s, u: views.heatmap(s, u, openedWithin, height))


@router.get("/heatmap/cell")
def cell(request: Request, coin: str, segment: int, openedWithin: str = "all") -> Response:  # noqa: N803
    def build(svc: Service, u: LatestUpdate) -> dict[str, Any]:
        data = views.cell(svc, u, coin, segment, openedWithin)
        # thousands of rows: rendered once with the data, so a repeated view costs no row formatting
        table = templates.get_template("positions_table.html").render(positions=data["rows"])
        return {**data, "table": Markup(table)}  # noqa: S704 (an autoescaping template wrote it)

    return _page(request, "cell.html", "heatmap", build)


@router.get("/leaderboards")
def leaderboards(request: Request, period: str = "day") -> Response:
    return _page(request, "leaderboards.html", "leaderboards", lambda s, u: views.leaderboard(s, u, period))


@router.get("/wallet")
def wallet_search(address: str = "") -> Response:
    return RedirectResponse(f"/dashboard/wallet/{quote(address.strip())}", 303, headers=HEADERS)


@router.get("/wallet/{address}")
def wallet(request: Request, address: str) -> Response:
    return _page(request, "wallet.html", "", lambda s, u: views.wallet(s, u, address))


@router.get("/fragments/freshness")
def freshness(request: Request) -> Response:
    if _signed_in(request) is None:
        return _html("", 401)
    svc, _ = _state(request)
    return _html(templates.get_template("freshness.html").render(fresh=views.freshness(svc.latest(), now_ms())))


@router.get("/events")
async def events(request: Request) -> Response:
    if _signed_in(request) is None:
        return _html("", 401)
    svc, _ = _state(request)
    last = request.headers.get("Last-Event-ID", "")
    stream = sse.updates(svc.latest, int(last) if last.isdigit() and len(last) < 19 else None, request.is_disconnected)
    return StreamingResponse(stream, media_type="text/event-stream", headers={**HEADERS, "X-Accel-Buffering": "no"})


static = StaticFiles(directory=STATIC)
