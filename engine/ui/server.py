"""The UI's web app: the JSON API over one local store, the page, and verified blob downloads.

``create_app(store)`` returns a Flask app. Flask (the ``ui`` extra) is imported here only, so
nothing on the build path loads it. Every route reads; none writes to the store.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import msgspec

from mlbuild.cache.cas import CorruptBlob, MissingBlob
from mlbuild.cache.digest import is_digest
from mlbuild.cache.store import LocalStore
from mlbuild.engine.ui import views

if TYPE_CHECKING:
    from flask import Flask, Response

__all__ = ["create_app"]

_json = msgspec.json.Encoder()
_PAGE_ROUTES = ("/", "/builds", "/builds/<build_id>", "/targets", "/targets/<path:label>")


def _label(path: str) -> str:
    """``models:resnet`` in a URL path is the label ``//models:resnet``."""
    return path if path.startswith("//") else "//" + path.lstrip("/")


def create_app(store: LocalStore) -> Flask:
    """The app serving ``store``: the page at ``/``, ``/builds/<id>``, ``/targets/<label>``, and
    the JSON API under ``/api/`` (see docs/ui-api.md)."""
    from flask import Flask, Response, request, send_file

    static = resources.files("mlbuild.engine.ui") / "static"
    app = Flask("mlbuild.engine.ui", static_folder=str(static), static_url_path="/static")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    def reply(value: Any, status: int = 200) -> Response:
        resp = Response(_json.encode(value), status=status, mimetype="application/json")
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

    def page(**_: Any) -> Response:
        # One page for every route: the script reads the path, hash and query itself.
        return Response(index_html, mimetype="text/html", headers={"Cache-Control": "no-cache"})

    for i, rule in enumerate(_PAGE_ROUTES):
        app.add_url_rule(rule, f"page{i}", page)

    def builds() -> views.BuildList:
        args = request.args
        try:
            limit = max(1, min(int(args.get("limit", 200)), 5000))
        except ValueError:
            limit = 200
        return views.list_builds(store, args.get("target", ""), args.get("status", ""),
                                 args.get("commit", ""), limit)

    def build(build_id: str) -> views.BuildDetail:
        return views.build_detail(store, build_id)

    def action(key: str) -> views.StepDetail:
        return views.step_detail(store, _key(key))

    def action_output(key: str) -> views.StepOutput:
        return views.step_output(store, _key(key))

    def action_code(key: str) -> views.StepCode:
        return views.step_code(store, _key(key))

    def action_env(key: str) -> views.StepEnv:
        return views.step_env(store, _key(key))

    def action_lineage(key: str) -> Any:
        from mlbuild.engine.ui.explain import lineage

        return lineage(store, _key(key), request.args.get("depth"))

    def build_why(build_id: str, label: str) -> Any:
        from mlbuild.engine.ui.explain import why

        return why(store, build_id, _label(label))

    def logs(digest: str) -> views.LogText:
        return views.log_text(store, _key(digest))

    def targets() -> dict[str, list[str]]:
        return {"targets": views.target_labels(store)}

    def target(label: str) -> views.TargetHistory:
        return views.target_history(store, _label(label))

    routes: list[tuple[str, Callable[..., Any]]] = [
        ("/api/builds", builds),
        ("/api/builds/<build_id>", build),
        ("/api/actions/<key>", action),
        ("/api/actions/<key>/output", action_output),
        ("/api/actions/<key>/code", action_code),
        ("/api/actions/<key>/env", action_env),
        ("/api/actions/<key>/lineage", action_lineage),
        ("/api/builds/<build_id>/why/<path:label>", build_why),
        ("/api/logs/<digest>", logs),
        ("/api/targets", targets),
        ("/api/targets/<path:label>", target),
    ]
    for rule, fn in routes:
        app.add_url_rule(rule, fn.__name__, api(fn))

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
        resp = send_file(path, mimetype=mimetype, as_attachment=bool(name), download_name=name or digest,
                         conditional=True, etag=digest, max_age=31536000)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp

    @app.errorhandler(404)
    def not_found(_: Exception) -> Response:
        if request.path.startswith("/api/"):
            return error(f"no such API route: {request.path}", 404)
        return error("not found", 404)

    @app.errorhandler(views.BadRequest)
    def bad_request(exc: views.BadRequest) -> Response:
        return error(str(exc), 400)

    return app


def _key(text: str) -> str:
    if not is_digest(text):
        raise views.BadRequest(f"{text!r} is not an action key or digest (32 hex characters)")
    return text


def _safe_inline_type(mimetype: str) -> bool:
    # Only images are shown inline; anything else (html, svg with scripts) is a download.
    return mimetype in ("image/png", "image/jpeg", "image/gif", "image/webp", "text/plain")
