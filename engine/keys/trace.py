"""Tracing a step while it runs: every project source file its process compiled, every installed
distribution its code imported (and those imported by them), every environment variable its
code read, every workspace file it opened without declaring it.

Recorded in the process that runs the step (``engine/run/runner.py``), one action at a time:

- Project modules are re-imported for every action (the ones a previous action left in
  ``sys.modules`` are dropped first), through a loader that compiles exactly the bytes it
  hashed. So the trace names each project file this action really executed, with the digest of
  what ran, whatever the import style (inside functions, importlib, registries, ``src/``
  layouts, editable installs), and a reused worker never runs code older than what is on disk.
- "Project" means any module whose file is neither in the standard library nor in a
  ``site-packages``/``dist-packages`` folder of an installed distribution (mlbuild itself is the
  engine and is not traced).
- Distributions: ``builtins.__import__`` and ``importlib.import_module`` are wrapped; an import
  made by project code names a distribution directly, and imports made by one distribution's
  modules of another's (numpy under scikit-learn) are followed transitively.
- Environment: ``os.environ`` reads made from project code (``os.environ[...]``, ``.get``,
  ``os.getenv``, ``in``). Reads by installed packages are not traced (see docs/keys.md).
- Undeclared reads: an audit hook (``sys.addaudithook``) sees every ``open`` and directory
  listing; those inside the workspace that are not declared inputs, sources or the cache count.

The hooks are installed once per process and cost a global lookup when no action is traced.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import os
import stat as stat_mod
import sys
import sysconfig
import threading
import time
import types
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from mlbuild.cache.digest import digest_bytes, digest_file
from mlbuild.cache.records import Trace
from mlbuild.engine.keys.trace_check import env_value, listing_digest, source_digest

# ---------------------------------------------------------------------------------------------
# Where a file belongs: the standard library, an installed distribution, mlbuild, or the project.

_STDLIB_DIRS = tuple(
    os.path.join(os.path.realpath(p), "")
    for p in {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")}
)
_MLBUILD_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
# mlbuild's own package folders (the engine is not the step's code); examples/ and tests/ are not.
_MLBUILD_DIRS = tuple(os.path.join(_MLBUILD_ROOT, d, "") for d in ("engine", "rules", "cache", "remote"))
_kind_cache: dict[str, str] = {}  # directory -> "stdlib" | "site" | "mlbuild" | "project"


def file_kind(path: str) -> str:
    """``stdlib``, ``site`` (a site-packages folder), ``mlbuild`` or ``project``."""
    folder = os.path.dirname(path)
    kind = _kind_cache.get(folder)
    if kind is None:
        real = os.path.join(os.path.realpath(folder), "")
        parts = real.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts:
            kind = "site"
        elif real.startswith(_MLBUILD_DIRS) or real == os.path.join(_MLBUILD_ROOT, ""):
            kind = "mlbuild"
        elif real.startswith(_STDLIB_DIRS) or folder.startswith("<frozen"):
            kind = "stdlib"
        else:
            kind = "project"
        _kind_cache[folder] = kind
    return kind


# ---------------------------------------------------------------------------------------------
# Per-process state. One action is traced at a time per process (runner contract).

_lock = threading.Lock()
_installed = False
_current: ActionTrace | None = None
_project_modules: set[str] = set()  # modules loaded from project files: dropped before each action
_code_cache: dict[tuple[str, str], types.CodeType] = {}  # (path, source digest) -> compiled code
_top_edges: dict[str, set[str]] = {}  # top-level module -> top-level modules its code imported
_preloaded: set[str] = set()  # top-level modules loaded before the hooks were installed
_real_import = builtins.__import__
_real_import_module = importlib.import_module
_real_env_getitem = os._Environ.__getitem__
# Frames between a project's ``os.environ`` read and the hook (frozen or not, per build of Python).
_ENV_FILES = {os.__file__, "<frozen os>", "<frozen _collections_abc>", getattr(sys.modules.get("_collections_abc"), "__file__", "")}


class _ProjectLoader(importlib.machinery.SourceFileLoader):
    """Compiles a project module from the bytes it hashes, so the trace's digest is of the code
    that ran (no stale ``.pyc``, no edit slipping in between hash and import)."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        st = os.stat(path)  # before the read: an edit after it shows as a changed stat
        data = self.get_data(path)
        digest = digest_bytes(data)
        act = _current
        if act is not None:
            act.loaded[path] = source_digest(data, digest)
            # Only what actions import is dropped before the next one: the modules of a process
            # embedding an in-process executor are its own business.
            _project_modules.add(fullname)
            _load_stats[path] = (st.st_size, st.st_mtime_ns, st.st_ino)
        code = _code_cache.get((path, digest))
        if code is None:
            code = compile(data, path, "exec", dont_inherit=True)
            _code_cache[(path, digest)] = code
        return code


class _ProjectFinder(importlib.abc.MetaPathFinder):
    """Finds modules as ``PathFinder`` does; hands project source modules to ``_ProjectLoader``."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None) -> Any:
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None:
            return None
        origin = spec.origin
        if isinstance(spec.loader, importlib.machinery.SourceFileLoader) and origin and file_kind(origin) == "project":
            spec.loader = _ProjectLoader(fullname, origin)
        elif spec.submodule_search_locations and (origin is None or origin == "namespace"):
            locations = list(spec.submodule_search_locations)
            if _current is not None and any(file_kind(os.path.join(p, "x")) == "project" for p in locations):
                _project_modules.add(fullname)  # a namespace package keeps stale submodule attributes
        return spec


def _top_of(globals_: Any) -> str | None:
    if not globals_:
        return None
    name = globals_.get("__name__")
    return name.partition(".")[0] if isinstance(name, str) else None


def _note_import(importer: str | None, target: str) -> None:
    if importer is None:
        return
    top = importer.partition(".")[0]
    if top != target:
        edges = _top_edges.get(top)
        if edges is None:
            edges = _top_edges[top] = set()
        if target not in edges:
            edges.add(target)
    act = _current
    if act is not None and importer in _project_modules:
        act.direct.setdefault(target, importer)


def _traced_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
    module = _real_import(name, globals, locals, fromlist, level)
    if level == 0 and globals:
        importer = globals.get("__name__")
        if isinstance(importer, str):
            _note_import(importer, name.partition(".")[0])
    return module


def _traced_import_module(name: str, package: str | None = None) -> types.ModuleType:
    module = _real_import_module(name, package)
    if not name.startswith("."):
        caller = sys._getframe(1).f_globals.get("__name__")
        _note_import(caller if isinstance(caller, str) else None, name.partition(".")[0])
    return module


def _env_getitem(self: Any, key: Any) -> Any:
    act = _current
    if act is None or self is not os.environ:
        return _real_env_getitem(self, key)
    try:
        value = _real_env_getitem(self, key)
    except KeyError:
        act.note_env(key, None, sys._getframe(1))
        raise
    act.note_env(key, value, sys._getframe(1))
    return value


def _environ_raw() -> dict[Any, Any]:
    """A copy of the process environment as ``os.environ`` keeps it (no per-variable decoding:
    this runs twice per action)."""
    return dict(os.environ._data)  # type: ignore[attr-defined]


def _restore_environ(saved: dict[Any, Any]) -> None:
    """Put ``os.environ`` (and the process environment under it) back to ``saved`` (raw)."""
    data = os.environ._data  # type: ignore[attr-defined]
    if data == saved:
        return
    decode_key, decode_value = os.environ.decodekey, os.environ.decodevalue
    for raw in [k for k in data if k not in saved]:
        del os.environ[decode_key(raw)]
    for raw, value in saved.items():
        if data.get(raw) != value:
            os.environ[decode_key(raw)] = decode_value(value)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    act = _current
    if act is None:
        return
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int) or path is None:
            return
        if mode is None:
            reading = (flags or 0) & os.O_ACCMODE != os.O_WRONLY
        else:
            reading = "r" in mode or "+" in mode
        if reading:
            act.note_open(path)
    elif event == "os.listdir" or event == "os.scandir":
        path = args[0] if args else "."
        if isinstance(path, int):
            return
        caller = sys._getframe(1).f_code.co_filename
        if "importlib" not in caller:  # the import system lists sys.path folders
            act.note_listing(path if path is not None else ".")


def install() -> None:
    """Install the hooks in this process (once; audit hooks cannot be removed)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        _preloaded.update(n.partition(".")[0] for n in list(sys.modules))
        sys.meta_path.insert(0, _ProjectFinder())
        builtins.__import__ = _traced_import
        importlib.import_module = _traced_import_module
        os._Environ.__getitem__ = _env_getitem  # type: ignore[method-assign]
        sys.addaudithook(_audit)


_workspaces_seen: set[str] = set()
# What the last action in this process recorded, and under which rule: the next action of the
# same rule (and code) keeps the loaded modules when none of their files changed, and starts
# from that record (a superset of what it would have recorded after a fresh import).
_carry: dict[str, Any] = {}
_load_stats: dict[str, tuple[int, int, int]] = {}  # project file -> (size, mtime, inode) when read


def _loaded_files_unchanged() -> bool:
    for path, sig in _load_stats.items():
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns, st.st_ino) != sig:
            return False
    return True


def _adopt_preloaded(workspace: str) -> None:
    """A workspace's modules imported before the hooks (by the process that embeds an in-process
    executor) are dropped once, so its actions import them through the hooks."""
    if workspace in _workspaces_seen:
        return
    _workspaces_seen.add(workspace)
    for name, mod in list(sys.modules.items()):
        file = getattr(mod, "__file__", None)
        if isinstance(file, str) and file.startswith(workspace):
            _project_modules.add(name)


def purge_project_modules() -> None:
    """Drop every project module from ``sys.modules``: the next action imports what it uses
    afresh, so its trace is its own and its code is what is on disk now."""
    for name in list(_project_modules):
        sys.modules.pop(name, None)
    _project_modules.clear()
    _load_stats.clear()
    _carry.clear()
    # (A project file created since is found: a folder's cached listing is refreshed when the
    # folder's mtime changes.)


# ---------------------------------------------------------------------------------------------
# Distributions


_dist_cache: dict[str, list[tuple[str, str]] | None] = {}  # top-level module -> [(dist, version)]
_packages_distributions: dict[str, list[str]] | None = None


def _dists_of_top(top: str) -> list[tuple[str, str]] | None:
    """The installed distributions providing top-level module ``top``; None if it is not one
    (stdlib, project, mlbuild, not loaded)."""
    if top in _dist_cache:
        return _dist_cache[top]
    global _packages_distributions
    result: list[tuple[str, str]] | None = None
    module = sys.modules.get(top)
    file = getattr(module, "__file__", None) if module is not None else None
    if file is None and module is not None:
        path = list(getattr(module, "__path__", []) or [])
        file = os.path.join(path[0], "__init__.py") if path else None
    if isinstance(file, str) and top not in sys.stdlib_module_names and file_kind(file) == "site":
        import importlib.metadata as md

        names: list[str] = []
        try:
            md.distribution(top)
            names = [top]
        except md.PackageNotFoundError:
            if _packages_distributions is None:
                _packages_distributions = {k: list(v) for k, v in md.packages_distributions().items()}
            names = _packages_distributions.get(top, [])
        found = []
        for dist in names:
            try:
                meta = md.distribution(dist)
                found.append((meta.metadata["Name"] or dist, meta.version))
            except md.PackageNotFoundError:
                continue
        result = found or None
    _dist_cache[top] = result
    return result


_site_state: list[str] = []


def _forget_versions_if_site_changed() -> None:
    """Versions are memoized per process; a package installed or upgraded since (a long-lived
    in-process executor) must not be reported at its old version."""
    from mlbuild.engine.keys.environment import site_signature

    now = site_signature()
    if _site_state != [now]:
        global _packages_distributions
        _site_state[:] = [now]
        _dist_cache.clear()
        _packages_distributions = None
        importlib.invalidate_caches()  # importlib.metadata's view of installed distributions


def _requires(dist: str) -> list[str]:
    """Top-level modules of the installed requirements of ``dist`` (for modules loaded before the
    hooks, whose imports were not seen)."""
    import importlib.metadata as md
    import re

    tops: list[str] = []
    try:
        reqs = md.requires(dist) or []
    except md.PackageNotFoundError:
        return tops
    for req in reqs:
        if "extra ==" in req:
            continue
        match = re.match(r"[A-Za-z0-9._-]+", req)
        if not match:
            continue
        try:
            files = md.files(match.group(0)) or []
        except md.PackageNotFoundError:
            continue
        for f in files:
            if f.suffix == ".py" and len(f.parts) >= 1 and not f.parts[0].endswith((".dist-info", ".egg-info", "..")):
                tops.append(f.parts[0].removesuffix(".py"))
                break
    return tops


# ---------------------------------------------------------------------------------------------
# One action


class ActionTrace:
    """Collects what one action loads and reads; ``finish()`` makes its ``Trace``."""

    def __init__(
        self, workspace: str, declared: Iterable[str], ignore: Iterable[str], image: bool = False, reuse_key: str | None = None
    ) -> None:
        self.reuse_key = reuse_key  # actions with the same key may keep the modules loaded
        self.workspace = os.path.join(os.path.abspath(workspace), "")
        self.declared = tuple(os.path.join(self.workspace, d) for d in declared)
        self.ignore = tuple(os.path.join(os.path.abspath(p), "") for p in ignore)
        self.image = image  # in a container, the image digest covers what is outside the workspace
        self.loaded: dict[str, str] = {}  # absolute source path -> digest compiled
        self.direct: dict[str, str] = {}  # top-level module -> the project module importing it
        self.env: dict[str, str | None] = {}
        self.opened: set[str] = set()
        self.listed: set[str] = set()
        self._caller_kind: dict[str, bool] = {}
        self.started_ns = 0
        self._environ: dict[Any, Any] = {}

    # -- recording ------------------------------------------------------------------------------

    def __enter__(self) -> ActionTrace:
        global _current
        install()
        _adopt_preloaded(self.workspace)
        # Variables an action sets (``os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ...)``)
        # must not leak into the next action of a reused worker: that one would record the
        # leaked value, which the build process never has, and miss on every later lookup.
        self._environ = _environ_raw()
        if self.reuse_key is not None and _carry.get("key") == self.reuse_key and _loaded_files_unchanged():
            loaded, direct, env, opened, listed = _carry["state"]
            self.loaded, self.direct, self.env = dict(loaded), dict(direct), dict(env)
            self.opened, self.listed = set(opened), set(listed)
            # The carried record already holds what project code read before it set anything.
            os.environ.update(_carry["environ"])
            for name in _carry["unset"]:
                os.environ.pop(name, None)
        else:
            purge_project_modules()
        _forget_versions_if_site_changed()
        self.started_ns = time.time_ns()
        _current = self
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        global _current
        _current = None
        ended = _environ_raw()
        _restore_environ(self._environ)
        if exc_type is None and self.reuse_key is not None:
            _carry["key"] = self.reuse_key
            _carry["state"] = (dict(self.loaded), dict(self.direct), dict(self.env), set(self.opened), set(self.listed))
            # Kept modules ran their import-time code once: what it set in the environment
            # (the setdefault above) must be there again for the next step that keeps them.
            decode_key, decode_value = os.environ.decodekey, os.environ.decodevalue
            changed = ended != self._environ
            _carry["environ"] = {decode_key(k): decode_value(v) for k, v in ended.items() if self._environ.get(k) != v} if changed else {}
            _carry["unset"] = [decode_key(k) for k in self._environ if k not in ended] if changed else []
        else:
            _carry.clear()

    def _from_project(self, frame: Any) -> bool:
        while frame is not None and frame.f_code.co_filename in _ENV_FILES:
            frame = frame.f_back
        if frame is None:
            return False
        filename = frame.f_code.co_filename
        known = self._caller_kind.get(filename)
        if known is None:
            known = self._caller_kind[filename] = not filename.startswith("<") and file_kind(filename) == "project"
        return known

    def note_env(self, key: Any, value: str | None, frame: Any) -> None:
        if isinstance(key, str) and key not in self.env and self._from_project(frame):
            self.env[key] = env_value(key, value)

    def _workspace_path(self, path: Any) -> str | None:
        try:
            full = os.path.abspath(os.fsdecode(path))
        except (TypeError, ValueError):
            return None
        if not full.startswith(self.workspace) or full.startswith(self.ignore):
            return None
        if full.startswith(self.declared) or full + os.sep in self.declared:
            return None
        return full

    def note_open(self, path: Any) -> None:
        full = self._workspace_path(path)
        if full is None:
            return
        head, name = os.path.split(full)
        if os.path.basename(head) == "__pycache__":
            # A module compiled outside the import system (``spec_from_file_location``): its source.
            full = os.path.join(os.path.dirname(head), name.split(".", 1)[0] + ".py")
        self.opened.add(full)

    def note_listing(self, path: Any) -> None:
        full = self._workspace_path(path)
        if full is not None:
            self.listed.add(full)

    # -- the result -----------------------------------------------------------------------------

    def changed_during_run(self) -> list[str]:
        """Project files loaded by this action that changed on disk since it started."""
        changed = []
        for path, digest in self.loaded.items():
            try:
                st = os.stat(path)
            except OSError:
                changed.append(path)
                continue
            if st.st_mtime_ns >= self.started_ns - 20_000_000 and _source_file_digest(path) != digest:
                changed.append(path)
        return changed

    def rel(self, path: str) -> str:
        return path[len(self.workspace) :] if path.startswith(self.workspace) else path

    def finish(self) -> Trace:
        files = {}
        for path, digest in self.loaded.items():
            if self.image and not path.startswith(self.workspace):
                continue
            files[self.rel(path)] = digest
        packages: dict[str, str] = {}
        via: dict[str, str] = {}
        if not self.image:
            self._packages(packages, via)
        reads = {}
        for path in self.opened:
            rel = self.rel(path)
            if rel in files or path in self.loaded:
                continue
            reads[rel] = _file_digest(path)
        for path in self.listed:
            reads.setdefault(self.rel(path) or ".", listing_digest(path))
        return Trace(
            files=dict(sorted(files.items())),
            packages=dict(sorted(packages.items())),
            via=dict(sorted(via.items())),
            env=dict(sorted(self.env.items())),
            reads=dict(sorted(reads.items())),
        )

    def _packages(self, packages: dict[str, str], via: dict[str, str]) -> None:
        todo = list(self.direct.items())
        seen: set[str] = set()
        while todo:
            top, importer = todo.pop()
            if top in seen:
                continue
            seen.add(top)
            dists = _dists_of_top(top)
            if not dists:
                continue
            via_name = importer
            for dist, version in dists:
                packages[dist] = version
                via.setdefault(dist, via_name)
            parent = dists[0][0]
            nexts = set(_top_edges.get(top, ()))
            if top in _preloaded:
                nexts.update(_requires(parent))
            todo.extend((t, parent) for t in nexts if t not in seen)


def _source_file_digest(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return source_digest(f.read())
    except OSError:
        return ""


def _file_digest(path: str) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return ""
    if stat_mod.S_ISDIR(st.st_mode):
        return listing_digest(path)
    return digest_file(path)[0]


def traced(workspace: str, declared: Iterable[str], ignore: Iterable[str], image: bool, run: Callable[[], Any]) -> tuple[Any, Trace]:
    """Run ``run()`` under a trace; convenience for callers that need no retry."""
    with ActionTrace(workspace, declared, ignore, image) as act:
        value = run()
    return value, act.finish()
