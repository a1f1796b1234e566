"""What a build is asked to do (``BuildSettings``) and the one configuration chain.

Every setting is taken from the first of: the caller (a command-line flag, or a field of
``BuildSettings`` given through the API), an environment variable, ``mlbuild.toml``, the
default. ``resolve_config`` is the only place that applies this order; ``mlbuild config`` prints
what it resolved and where each value came from.

This module is light (msgspec and the standard library): ``import mlbuild.engine`` loads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from mlbuild.cache.location import ENV_CACHE_DIR, user_cache_dir
from mlbuild.engine.errors import UserError
from mlbuild.engine.interfaces import ExecutorOptions, RemoteCacheSettings

if TYPE_CHECKING:
    from mlbuild.engine.plan.workspace import Workspace

__all__ = ["BuildSettings", "Config", "RemoteSettings", "Setting", "option_settings", "parse_set", "resolve_config"]

DEFAULT_EXECUTOR = "local"
DEFAULT_REMOTE_TIMEOUT = 5.0

ENV_JOBS = "MLBUILD_JOBS"
ENV_EXECUTOR = "MLBUILD_EXECUTOR"
ENV_REMOTE = "MLBUILD_REMOTE_CACHE"
ENV_REMOTE_UPLOAD = "MLBUILD_REMOTE_UPLOAD"
ENV_REMOTE_TIMEOUT = "MLBUILD_REMOTE_TIMEOUT"
ENV_REMOTE_OPTIONS = "MLBUILD_REMOTE_OPTIONS"
ENV_CACHE_KEY = "MLBUILD_CACHE_KEY"
ENV_STRICT = "MLBUILD_STRICT"


class RemoteSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The remote cache as the caller asks for it; None fields are left to the chain."""

    url: str | None = None  # an fsspec URL (--remote-cache)
    upload: bool | None = None  # publish results (--remote-upload)
    timeout: float | None = None  # seconds before the remote counts as down (--remote-timeout)
    enabled: bool = True  # False: no remote at all, whatever is configured (reproduce, verify --runs)


class BuildSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a build needs; ``mlbuild.engine.build`` takes it. None means "not given":
    the configuration chain decides (``resolve_config``)."""

    targets: list[str]  # labels or patterns: //pkg:name, //pkg/..., :name (relative to ``directory``)
    directory: str | None = None  # where relative labels are read from, inside the workspace (default: cwd)
    jobs: int | None = None  # steps at once (default: the CPU count)
    executor: str | None = None  # a backend's name (default: [workspace] executor, else local)
    executor_options: ExecutorOptions | None = None  # the backend's own options Struct
    # Or its fields by name, as the command line gives them (--ray-address fills ray_address;
    # None: not given): made into the options Struct of whichever backend the chain picks.
    executor_flags: dict[str, Any] = {}
    remote: RemoteSettings = msgspec.field(default_factory=RemoteSettings)
    cache_dir: str | None = None  # the local cache (default: $MLBUILD_CACHE_DIR, [cache] dir, ~/.cache/mlbuild)
    overrides: dict[str, dict[str, Any]] = {}  # label -> {dotted config field: value} (--set)
    no_cache: bool = False  # execute everything; still record the results
    keep_going: bool = False  # go on with independent targets after a failure
    materialize: bool = True  # write the requested outputs under mlbuild-out/
    run_steps: bool = True  # False: nothing runs and no build is recorded; misses fail "not built"
    quiet: bool = False  # print only errors and the summary
    timeout: float | None = None  # seconds: stop any step that runs longer (caps @rule(timeout=...))
    strict: bool | None = None  # an undeclared workspace read fails its step (default: [build] strict, else no)
    argv: list[str] = []  # the command line, for the build record
    rerun_of: str | None = None  # the recorded build this one re-runs
    name: str | None = None  # an experiment's name (--name), for `exp show` and `builds`
    tags: dict[str, str] = {}  # --tag K=V


class Setting(msgspec.Struct, frozen=True):
    """One effective setting and where it came from."""

    name: str
    value: Any
    source: str  # "flag", "env NAME", "mlbuild.toml [section] key", "default"


class Config(msgspec.Struct, kw_only=True):
    """The effective settings of one build (or command), resolved once."""

    executor: str
    jobs: int
    cache_dir: str
    remote: RemoteCacheSettings | None  # None: no remote cache
    remote_upload: bool
    strict: bool
    settings: list[Setting]  # each of the above, with its source, for ``mlbuild config``


def cpu_count() -> int:
    return os.cpu_count() or 1


def _bool(text: str) -> bool:
    return text.strip().lower() not in ("0", "false", "no", "off", "")


def _number(kind: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text.strip())
        except ValueError:
            raise UserError(f"{what}: {text!r} is not a number") from None
        if value <= 0:
            raise UserError(f"{what}: {text!r} must be more than 0")
        return value

    return parse


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"{ENV_REMOTE_OPTIONS} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UserError(f"{ENV_REMOTE_OPTIONS} must be a JSON object of fsspec storage options")
    return value


class _Chain:
    """Applies flag → environment → mlbuild.toml → default, and remembers each answer's source."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.settings: list[Setting] = []

    def pick(self, name: str, flag: Any, env: str | None, parse: Callable[[str], Any] | None,
             toml: tuple[Any, str] | None, default: Any) -> Any:
        if flag is not None:
            value, source = flag, "flag"
        elif env is not None and self.environ.get(env, "").strip():
            raw = self.environ[env]
            value, source = (parse(raw) if parse else raw), f"env {env}"
        elif toml is not None and toml[0] is not None:
            value, source = toml[0], f"mlbuild.toml {toml[1]}"
        else:
            value, source = default, "default"
        self.settings.append(Setting(name, value, source))
        return value


def resolve_config(settings: BuildSettings, ws: Workspace | None,
                   environ: Mapping[str, str] | None = None) -> Config:
    """The effective settings of a build in workspace ``ws`` (None: outside of one)."""
    env = os.environ if environ is None else environ
    chain = _Chain(env)
    cfg = ws.config if ws is not None else None
    executor = chain.pick("executor", settings.executor, ENV_EXECUTOR, None,
                          (cfg.workspace.executor, "[workspace] executor") if cfg else None, DEFAULT_EXECUTOR)
    jobs = chain.pick("jobs", settings.jobs, ENV_JOBS, _number(int, ENV_JOBS), None, cpu_count())
    if jobs < 1:
        raise UserError(f"-j {jobs}: give at least 1")
    toml_dir = ws.cache_dir if ws is not None else None
    cache_dir = chain.pick("cache.dir", settings.cache_dir, ENV_CACHE_DIR, None,
                           (toml_dir, "[cache] dir"), str(user_cache_dir(env)))
    cache_dir = str(Path(cache_dir).expanduser())
    chain.pick("image", None, None, None, (cfg.workspace.image, "[workspace] image") if cfg else None, None)
    strict = chain.pick("strict", settings.strict, ENV_STRICT, _bool,
                        (cfg.build.strict, "[build] strict") if cfg else None, False)

    remote = settings.remote
    if remote.enabled:
        url = chain.pick("remote.url", remote.url, ENV_REMOTE, None,
                         (cfg.cache.remote, "[cache] remote") if cfg else None, None)
    else:
        url = None
        chain.settings.append(Setting("remote.url", None, "off for this command"))
    upload = chain.pick("remote.upload", remote.upload, ENV_REMOTE_UPLOAD, _bool,
                        (cfg.cache.remote_upload, "[cache] remote_upload") if cfg else None, True)
    timeout = chain.pick("remote.timeout", remote.timeout, ENV_REMOTE_TIMEOUT, _number(float, ENV_REMOTE_TIMEOUT),
                         (cfg.cache.remote_timeout, "[cache] remote_timeout") if cfg else None, DEFAULT_REMOTE_TIMEOUT)
    transport = chain.pick("remote.options", None, ENV_REMOTE_OPTIONS, _json_object, None, {})
    key = env.get(ENV_CACHE_KEY, "")
    # The key itself is a secret: only whether one is set is shown.
    chain.settings.append(Setting("remote.signing_key", "(set)" if key else None, f"env {ENV_CACHE_KEY}" if key else "default"))
    remote_settings = None
    if url:
        remote_settings = RemoteCacheSettings(url=str(url), timeout=float(timeout), options=transport,
                                              signing_key=key.encode() if key else None)
    return Config(executor=str(executor), jobs=int(jobs), cache_dir=cache_dir, remote=remote_settings,
                  remote_upload=bool(upload), strict=bool(strict), settings=chain.settings)


def option_settings(options: ExecutorOptions) -> list[Setting]:
    """The fields of a backend's options Struct as settings (given by a flag, or the default)."""
    defaults = type(options)()
    return [Setting(f"executor.{field}", getattr(options, field),
                    "default" if getattr(options, field) == getattr(defaults, field) else "flag")
            for field in options.__struct_fields__]


def parse_set(values: list[str]) -> dict[str, dict[str, Any]]:
    """``--set //models:resnet.epochs=5`` → {"//models:resnet": {"epochs": 5}}; a pattern
    ``--set '//mnist/...:batch_size=64'`` → {"//mnist/...": {"batch_size": 64}} (every target
    under //mnist that has the field; ``engine/plan/overrides.py`` expands and checks it).

    Labels stay as written (``:resnet`` too); the build reads them relative to its directory."""
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        lhs, sep, raw = item.partition("=")
        if "...:" in lhs:
            where, _, field = lhs.partition("...:")
            target, dot = where + "...", "."
        else:
            target, dot, field = lhs.partition(".") if not lhs.startswith("//") else _split_field(lhs)
        if not sep or not dot or not field or not target:
            raise UserError(f"bad --set {item!r}: use --set //pkg:target.field=value (or '//pkg/...:field=value')")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(target, {})[field] = value
    return out


def _split_field(lhs: str) -> tuple[str, str, str]:
    pkg_and_name, colon, rest = lhs.partition(":")
    name, dot, field = rest.partition(".")
    return pkg_and_name + colon + name, dot, field
