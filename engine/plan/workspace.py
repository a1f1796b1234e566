"""Workspaces: a folder with ``mlbuild.toml``; packages are folders with a ``BUILD.py``.

Packages are loaded on demand (a build of ``//models:resnet`` reads only the BUILD.py files it
needs). Loading executes BUILD.py files, never the rule modules they name.
"""

from __future__ import annotations

import os
import tomllib
import traceback
import unicodedata
from pathlib import Path
from typing import Any

import msgspec

from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.labels import Label, Pattern, check_name, parse_label
from mlbuild.engine.time_limit import TimeUp, time_limit
from mlbuild.rules.rule import Resources
from mlbuild.rules.target import DeclarationError, File, collecting, stop_collecting

WORKSPACE_FILE = "mlbuild.toml"
BUILD_FILE = "BUILD.py"
OUTPUT_DIR = "mlbuild-out"
_SKIP_DIRS = {OUTPUT_DIR, "__pycache__", "node_modules", ".git", ".venv", "venv"}


# None is "not set here": the defaults are applied, after the command line and the
# environment, by the one configuration chain (engine/run/settings.py, ``mlbuild config``).
class WorkspaceSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str = ""
    image: str | None = None  # default container image for every rule
    executor: str | None = None


class CacheSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    dir: str | None = None
    remote: str | None = None
    remote_upload: bool | None = None
    remote_timeout: float | None = None


class BuildSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    load_timeout: float = 60.0  # seconds one BUILD.py may take to load; 0: no limit
    strict: bool | None = None  # an undeclared workspace read fails its step (as --strict does)


class WorkspaceConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``mlbuild.toml``; every section optional."""

    workspace: WorkspaceSection = msgspec.field(default_factory=WorkspaceSection)
    cache: CacheSection = msgspec.field(default_factory=CacheSection)
    build: BuildSection = msgspec.field(default_factory=BuildSection)


class FileInput(msgspec.Struct, frozen=True):
    """A source file or directory, workspace-relative."""

    path: str


class Target(msgspec.Struct, kw_only=True):
    """A declared target with its labels resolved."""

    label: Label
    rule_file: str  # workspace-relative path of the rule module
    rule_func: str
    inputs: dict[str, Label | FileInput]
    config: Any
    image: str | None
    resources: Resources | None
    tags: list[str]
    executor: str | None
    build_file: str

    @property
    def rule_id(self) -> str:
        return f"{self.rule_file}:{self.rule_func}"

    def deps(self) -> list[Label]:
        return [v for v in self.inputs.values() if isinstance(v, Label)]


def find_root(start: str | os.PathLike[str]) -> Path:
    here = Path(start).resolve()
    for d in (here, *here.parents):
        if (d / WORKSPACE_FILE).is_file():
            return d
    raise UserError(f"no {WORKSPACE_FILE} found in {here} or any parent folder: not in a workspace")


class Workspace:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()
        self.config = self._read_config()
        self._packages: dict[str, dict[str, Target]] = {}

    def _read_config(self) -> WorkspaceConfig:
        path = self.root / WORKSPACE_FILE
        try:
            raw = tomllib.loads(path.read_bytes().decode("utf-8"))
            return msgspec.convert(raw, WorkspaceConfig)
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot read it: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
            raise UserError(f"{path}: bad workspace configuration: {exc}") from None

    @property
    def cache_dir(self) -> str | None:
        """``[cache] dir`` of mlbuild.toml, a relative one taken from the workspace root."""
        configured = self.config.cache.dir
        if not configured:
            return None
        return str(self.root / Path(configured).expanduser())

    def package_of(self, cwd: str | os.PathLike[str]) -> str:
        """The package a folder belongs to (its nearest parent with a BUILD.py), or ''."""
        here = Path(cwd).resolve()
        for d in (here, *here.parents):
            if d == self.root or self.root not in d.parents:
                break
            if (d / BUILD_FILE).is_file():
                return d.relative_to(self.root).as_posix()
        return ""

    def build_file(self, pkg: str) -> Path:
        """``<root>/<pkg>/BUILD.py``, refused when the package's folder resolves outside the
        workspace (a symlink out): its BUILD.py would run and its outputs land elsewhere."""
        folder = self.root / pkg if pkg else self.root
        real = Path(os.path.realpath(folder))
        if real != self.root and self.root not in real.parents:
            raise UserError(f"package //{pkg}: its folder {folder} leads to {real}, outside the workspace {self.root}; "
                            "a package must be a folder inside the workspace")
        return folder / BUILD_FILE

    def all_packages(self, under: str = "") -> list[str]:
        base = self.build_file(under).parent
        if not base.is_dir():
            raise UserError(f"no package //{under}: folder {base} does not exist")
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
            if BUILD_FILE in filenames:
                found.append(Path(dirpath).relative_to(self.root).as_posix().strip("."))
        return found

    def package(self, pkg: str) -> dict[str, Target]:
        if pkg not in self._packages:
            self._packages[pkg] = self._load_package(pkg)
        return self._packages[pkg]

    def target(self, label: Label, needed_by: str | None = None) -> Target:
        loaded = self._packages.get(label.package)
        if loaded is not None and label.name in loaded:
            return loaded[label.name]
        where = f" (an input of {needed_by})" if needed_by else ""
        build = self.build_file(label.package)
        if not build.is_file():
            raise UserError(f"unknown package //{label.package} for target {label}{where}: no {build.relative_to(self.root)}")
        targets = self.package(label.package)
        if label.name not in targets:
            known = ", ".join(sorted(targets)) or "none"
            raise UserError(f"unknown target {label}{where}; //{label.package} declares: {known}")
        return targets[label.name]

    def expand(self, pattern: Pattern) -> list[Label]:
        if pattern.recursive:
            labels = [t.label for pkg in self.all_packages(pattern.package) for t in self.package(pkg).values()]
            if not labels:
                raise UserError(f"pattern {pattern} matches no targets")
            return labels
        if pattern.name is None:
            build = self.build_file(pattern.package)
            if not build.is_file():
                raise UserError(f"unknown package //{pattern.package}")
            return [t.label for t in self.package(pattern.package).values()]
        label = Label(pattern.package, pattern.name)
        self.target(label)
        return [label]

    def _load_package(self, pkg: str) -> dict[str, Target]:
        build = self.build_file(pkg)
        rel = build.relative_to(self.root).as_posix()
        decls, token = collecting(self.root, build.parent)
        limit = self.config.build.load_timeout
        try:
            try:
                code = compile(build.read_bytes(), str(build), "exec")
            except (SyntaxError, ValueError) as exc:  # ValueError: a null byte
                raise UserError(f"malformed {rel}: {exc}") from None
            except OSError as exc:
                raise UserError(f"cannot read {rel}: {exc.strerror}") from None
            with time_limit(limit):
                exec(code, {"__name__": f"mlbuild.BUILD.{pkg}", "__file__": str(build)})
        except DeclarationError as exc:
            raise UserError(f"malformed {rel}: {exc}") from None
        except SystemExit as exc:
            # A BUILD.py declares targets; exiting would end mlbuild with nothing built or said.
            raise UserError(f"malformed {rel}: it calls sys.exit({exc.code!r}) while loading; "
                            "a BUILD.py must only declare targets") from None
        except TimeUp:
            raise UserError(f"{rel}: loading took more than {limit:g}s (an endless loop?); "
                            "[build] load_timeout in mlbuild.toml sets the limit") from None
        except Exception as exc:  # whatever the file raises, one line naming it
            frame = next((f for f in reversed(traceback.extract_tb(exc.__traceback__)) if f.filename == str(build)), None)
            where = f":{frame.lineno}" if frame else ""
            raise UserError(f"malformed {rel}{where}: {type(exc).__name__}: {exc}") from None
        finally:
            stop_collecting(token)
        targets: dict[str, Target] = {}
        rule_files: dict[str, str] = {}
        for d in decls:
            d.name = unicodedata.normalize("NFC", d.name)  # as labels are parsed
            problem = check_name(d.name)
            if problem:
                raise UserError(f"malformed {rel}: {problem}")
            if d.name in targets:
                raise UserError(f"malformed {rel}: target {d.name!r} is declared twice")
            label = Label(pkg, d.name)
            inputs: dict[str, Label | FileInput] = {}
            for name, ref in d.inputs.items():
                if isinstance(ref, File):
                    inputs[name] = FileInput(self._resolve_path(pkg, ref.path, label, name))
                else:
                    try:
                        inputs[name] = parse_label(ref, pkg)
                    except UserError as exc:
                        raise UserError(f"{label}: input {name!r}: {exc}") from None
            rule_path, func = d.rule.rsplit(":", 1)
            if rule_path not in rule_files:
                rule_file = self._resolve_path(pkg, rule_path, label, "rule")
                if not (self.root / rule_file).is_file():
                    raise UserError(f"{label}: rule file {rule_file} does not exist")
                rule_files[rule_path] = rule_file
            rule_file = rule_files[rule_path]
            targets[d.name] = Target(
                label=label,
                rule_file=rule_file,
                rule_func=func,
                inputs=inputs,
                config=d.config,
                image=d.image or self.config.workspace.image,
                resources=d.resources,
                tags=d.tags,
                executor=d.executor,
                build_file=rel,
            )
        return targets

    def _resolve_path(self, pkg: str, path: str, label: Label, what: str) -> str:
        rel = path[2:] if path.startswith("//") else os.path.normpath(os.path.join(pkg, path))
        rel = Path(rel).as_posix()
        if rel.startswith("../") or os.path.isabs(rel):
            raise UserError(f"{label}: {what} path {path!r} points outside the workspace")
        return rel
