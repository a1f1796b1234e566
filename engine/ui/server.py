"""The UI's web app: the JSON API over one local store, the page, and verified blob downloads.

``create_app(store)`` returns a Flask app. Flask (the ``ui`` extra) is imported here only, so
nothing on the build path loads it. Every route reads; none writes to the store.

Safety, since the cache holds source code and data: every request's ``Host`` must name the
address the server listens on (a page elsewhere cannot reach it through DNS rebinding); when
the server listens beyond loopback a random per-start token is required too (given once in the
printed URL, then kept in a cookie); every response forbids framing and carries a CSP that
allows only the app's own scripts.
"""

from __future__ import annotations

import hmac
import re
import threading
from collections.abc import Callable, Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec
import xxhash

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.digest import is_digest
from mlbuild.cache.store import LocalStore
from mlbuild.engine.errors import UserError
from mlbuild.engine.inspect.recorded import ALL, Scope
from mlbuild.engine.ui import views

if TYPE_CHECKING:
    from flask import Flask, Response

__all__ = ["create_app", "LOOPBACK_HOSTS", "content_disposition", "warm_layouts"]

_json = msgspec.json.Encoder()
_PAGE_ROUTES = ("/", "/builds", "/builds/<build_id>", "/targets", "/targets/<path:label>", "/compare")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_COOKIE = "mlbuild_token"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def _label(path: str) -> str:
    """``models:resnet`` in a URL path is the label ``//models:resnet``."""
    return path if path.startswith("//") else "//" + path.lstrip("/")


def _host_name(header: str) -> str:
    """The host of a Host header, without its port and brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def content_disposition(name: str) -> str:
    """``attachment`` with ``name`` kept whole: an ASCII fallback and the exact name per
    RFC 5987 (``filename*=UTF-8''…``), so ``#``, ``&``, spaces and non-ASCII all survive."""
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", name).strip() or "download"
    fallback = re.sub(r'[^A-Za-z0-9._ -]', "_", name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def create_app(
    store: LocalStore, *, hosts: Iterable[str] | None = LOOPBACK_HOSTS, token: str | None = None,
    scope: Scope = ALL,
) -> Flask:
    """The app serving ``store``: the page at ``/``, ``/builds/<id>``, ``/targets/<label>``, and
    the JSON API under ``/api/`` (see docs/ui-api.md).

    ``hosts``: the names a request's Host header may carry (None: any, for a server listening
    on every interface, where ``token`` guards it). ``token``: required of every request, as
    ``?token=`` (which sets a cookie), the cookie, or an ``X-Mlbuild-Token`` header.
    ``scope``: the workspace whose builds and targets the lists show when a request does not
    say (``?workspace=ID`` or ``?workspace=all``).
    """
    from flask import Flask, Response, request, send_file

    from mlbuild.engine.ui.live import live_log

    static = resources.files("mlbuild.engine.ui") / "static"
    app = Flask("mlbuild.engine.ui", static_folder=str(static), static_url_path="/static")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    allowed = None if hosts is None else {_host_name(h) for h in hosts}

    _bodies: dict[str, bytes] = {}  # record version -> the encoded BuildDetail
    _bodies_lock = threading.Lock()

    def reply(value: Any, status: int = 200, etag: str | None = None) -> Response:
        resp = Response(_json.encode(value), status=status, mimetype="application/json")
        if etag is not None:
            # The page asks again while a build runs: unchanged records cost a 304 and no body.
            resp.set_etag(etag)
            resp.headers["Cache-Control"] = "no-cache"
        else:
            resp.headers["Cache-Control"] = "no-store"  # a running build changes under the page
        return resp

    def error(message: str, status: int) -> Response:
        return reply({"error": message}, status)

    def api(fn: Callable[..., Any]) -> Callable[..., Response]:
        def handler(**kwargs: Any) -> Response:
            try:
                return reply(fn(**kwargs))
            except views.NotFound as exc:
                return error(str(exc), 404)

        handler.__name__ = fn.__name__
        return handler

    index_html = (static / "index.html").read_bytes()

    def page(status: int = 200) -> Response:
        # One page for every route: the script reads the path, hash and query itself.
        return Response(index_html, status=status, mimetype="text/html", headers={"Cache-Control": "no-cache"})

    for i, rule in enumerate(_PAGE_ROUTES):
        app.add_url_rule(rule, f"page{i}", lambda **_: page())

    @app.before_request
    def guard() -> Response | None:
        if allowed is not None and _host_name(request.host) not in allowed:
            return Response(f"mlbuild ui: refused: Host {request.host!r} is not this server's address\n",
                            status=421, mimetype="text/plain")
        if token is None:
            return None
        given = request.args.get("token") or request.headers.get("X-Mlbuild-Token") or request.cookies.get(TOKEN_COOKIE)
        if not given or not hmac.compare_digest(given, token):
            return Response("mlbuild ui: open the URL with the token that `mlbuild ui` printed\n",
                            status=403, mimetype="text/plain")
        if "token" in request.args and request.method == "GET":
            # Keep the token out of the address bar, history and Referer: a cookie from now on.
            rest = "&".join(f"{quote(k)}={quote(v)}" for k, v in request.args.items(multi=True) if k != "token")
            resp = Response(status=303, headers={"Location": request.path + ("?" + rest if rest else "")})
            resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
            return resp
        return None

    @app.after_request
    def headers(resp: Response) -> Response:
        resp.headers["Content-Security-Policy"] = CSP
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        return resp

    def builds() -> Response:
        args = request.args
        try:
            limit = max(1, min(int(args.get("limit", 200)), 5000))
        except ValueError:
            limit = 200
        data = views.list_builds(store, args.get("target", ""), args.get("status", ""),
                                 args.get("commit", ""), limit, views.workspace_scope(args.get("workspace"), scope))
        body = _json.encode(data)
        etag = xxhash.xxh3_64_hexdigest(body)
        if etag in request.if_none_match:
            return reply_not_modified(etag)
        resp = Response(body, mimetype="application/json")
        resp.set_etag(etag)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    def reply_not_modified(etag: str) -> Response:
        resp = Response(status=304)
        resp.set_etag(etag)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    def build(build_id: str) -> Response:
        from mlbuild.engine.ui.dag import record_version

        try:
            record = views.find(store, build_id)  # any unique part of an id
        except views.NotFound as exc:
            return error(str(exc), 404)
        etag = record_version(record)
        if etag in request.if_none_match:
            return reply_not_modified(etag)
        body = _bodies.get(etag)
        if body is None:
            # A 10,000-step answer is 2.5 MB of JSON: encoded once per version of the record.
            body = _json.encode(views.build_detail(store, record.id))
            with _bodies_lock:
                _bodies[etag] = body
                while len(_bodies) > 4:
                    _bodies.pop(next(iter(_bodies)))
        resp = Response(body, mimetype="application/json")
        resp.set_etag(etag)
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    def action(key: str) -> views.StepDetail:
        return views.step_detail(store, _key(key), request.args.get("build") or None)

    def action_output(key: str) -> views.StepOutput:
        return views.step_output(store, _key(key))

    def action_code(key: str) -> views.StepCode:
        return views.step_code(store, _key(key))

    def action_env(key: str) -> views.StepEnv:
        return views.step_env(store, _key(key))

    def action_lineage(key: str) -> Any:
        from mlbuild.engine.ui.explain import lineage

        return lineage(store, _key(key), request.args.get("depth"), request.args.get("build") or None)

    def build_why(build_id: str, label: str) -> Any:
        from mlbuild.engine.ui.explain import why

        return why(store, build_id, _label(label))

    def logs(digest: str) -> views.LogText:
        return views.log_text(store, _key(digest))

    def live(label: str) -> Any:
        raw = request.args.get("offset")
        try:
            offset = None if raw in (None, "") else int(raw)
        except ValueError:
            raise views.BadRequest(f"offset must be a number, not {raw!r}") from None
        return live_log(store.cas.tmp, _label(label), offset)

    def targets() -> dict[str, list[str]]:
        return {"targets": views.target_labels(store, views.workspace_scope(request.args.get("workspace"), scope))}

    def target(label: str) -> views.TargetHistory:
        return views.target_history(store, _label(label), views.workspace_scope(request.args.get("workspace"), scope))

    def workspaces() -> views.WorkspaceList:
        return views.workspaces(store, scope)

    def compare() -> Any:
        from mlbuild.engine.ui.compare import compare_builds

        ids = [i for i in request.args.get("builds", "").split(",") if i.strip()]
        try:
            return compare_builds(store, ids, views.workspace_scope(request.args.get("workspace"), ALL),
                                  include_same=request.args.get("all") == "1")
        except UserError as exc:  # an unknown or ambiguous id, too few or too many builds
            raise views.BadRequest(str(exc)) from None

    def trend() -> Any:
        from mlbuild.engine.ui.compare import metric_trend

        return metric_trend(store, _label(request.args.get("target", "").removeprefix("//")),
                            views.workspace_scope(request.args.get("workspace"), scope))

    routes: list[tuple[str, Callable[..., Any]]] = [
        ("/api/actions/<key>", action),
        ("/api/actions/<key>/output", action_output),
        ("/api/actions/<key>/code", action_code),
        ("/api/actions/<key>/env", action_env),
        ("/api/actions/<key>/lineage", action_lineage),
        ("/api/builds/<build_id>/why/<path:label>", build_why),
        ("/api/logs/<digest>", logs),
        ("/api/live/<path:label>", live),
        ("/api/targets", targets),
        ("/api/targets/<path:label>", target),
        ("/api/workspaces", workspaces),
        ("/api/compare", compare),
        ("/api/trend", trend),
    ]
    for rule, fn in routes:
        app.add_url_rule(rule, fn.__name__, api(fn))
    app.add_url_rule("/api/builds", "builds", builds)
    app.add_url_rule("/api/builds/<build_id>", "build", build)

    @app.route("/api/blobs/<digest>")
    def blob(digest: str) -> Response:
        """The blob's bytes, after checking them against the digest (a corrupt blob is a 404
        and is removed from the cache, as on every read)."""
        if not is_digest(digest):
            return error(f"{digest!r} is not a digest", 400)
        try:
            path = store.cas.verified_path(digest)
        except MissingBlob:
            return error(f"no blob {digest} in this cache", 404)
        except CorruptBlob as exc:
            return error(str(exc), 404)
        mimetype = request.args.get("type") or "application/octet-stream"
        if not _safe_inline_type(mimetype):
            mimetype = "application/octet-stream"
        name = request.args.get("name")
        resp = send_file(path, mimetype=mimetype, conditional=True, etag=digest, max_age=31536000)
        if name:
            resp.headers["Content-Disposition"] = content_disposition(name)
        return resp

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        if request.path.startswith("/api/"):
            return error(f"no such API route: {request.path}", 404)
        return page(404)  # the app draws its own "not found" page

    @app.errorhandler(views.BadRequest)
    def bad_request(exc: views.BadRequest) -> Response:
        return error(str(exc), 400)

    return app


def warm_layouts(store: LocalStore, count: int = 3) -> None:
    """Lay out the ``count`` newest builds, so that their pages open without that wait."""
    try:
        for summary in views.list_builds(store, limit=count).builds:
            views.build_detail(store, summary.id)
    except Exception:  # noqa: BLE001 - only a head start: a request lays out the build itself
        pass


def _key(text: str) -> str:
    if not is_digest(text):
        raise views.BadRequest(f"{text!r} is not an action key or digest (32 hex characters)")
    return text


def _safe_inline_type(mimetype: str) -> bool:
    # Only images are shown inline; anything else (html, svg with scripts) is a download.
    return mimetype in ("image/png", "image/jpeg", "image/gif", "image/webp", "text/plain")
