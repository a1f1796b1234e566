"""Requested outputs written under ``mlbuild-out/<pkg>/``: atomically, and repaired when damaged.

Invariants (each has a test in tests/test_materialize.py):

- A target's outputs are assembled in a staging folder beside their final place
  (``mlbuild-out/<pkg>/.mlbuild-staging-*``) and renamed into it; a build killed at any moment
  leaves either the old outputs, no outputs, or the new ones, never a mix that a marker names.
- The package's marker file (``.mlbuild-results``) MUST name a result only once its files are
  complete: the entry is dropped before anything is touched and written after the renames. It
  also records each file's size and mtime, so a later build checks with one ``lstat`` per file
  (no reads, no hashing) that the files are still the ones it wrote, and re-copies anything
  missing, changed or foreign (a file it did not write, such as a killed copy's temp file).
- Two builds of one workspace materialize one package at a time (an ``flock`` on
  ``.mlbuild-lock`` in the package's folder); the second re-reads the markers under the lock
  and finds the work done, or does it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from mlbuild.cache.cas import CAS, CorruptBlob, MissingBlob
from mlbuild.cache.records import ActionResult, ArtifactRef, ResultDigests
from mlbuild.cache.trees import copy_verified, read_tree
from mlbuild.engine.errors import UserError
from mlbuild.engine.plan.labels import Label
from mlbuild.engine.records import MARKERS_SCHEMA, Markers, Materialized, Stamp

__all__ = ["MARKERS", "Materializer", "read_markers"]

MARKERS = ".mlbuild-results"
LOCK = ".mlbuild-lock"
STAGING_PREFIX = ".mlbuild-staging-"
_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Markers)


def _load(package_dir: Path) -> Markers:
    """The package's markers; unreadable, foreign or older markers read as empty (the outputs
    are then checked and copied again, which is always safe)."""
    try:
        markers = _dec.decode((package_dir / MARKERS).read_bytes())
    except (OSError, msgspec.DecodeError):
        return Markers()
    return markers if markers.schema == MARKERS_SCHEMA else Markers()


def _store(package_dir: Path, markers: Markers) -> None:
    tmp = package_dir / f"{MARKERS}.{secrets.token_hex(4)}.tmp"
    tmp.write_bytes(_enc.encode(markers))
    os.replace(tmp, package_dir / MARKERS)


def read_markers(package_dir: Path) -> dict[str, str]:
    """Target name -> result digest of the outputs materialized in ``package_dir``."""
    return {name: m.result for name, m in _load(package_dir).targets.items()}


@contextlib.contextmanager
def _package_lock(package_dir: Path) -> Iterator[None]:
    package_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(package_dir / LOCK, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
        yield
    finally:
        os.close(fd)


def _intact(package_dir: Path, name: str, entry: Materialized) -> bool:
    """True when the files on disk are exactly the ones ``entry`` stamped (one lstat each)."""
    base = os.fspath(package_dir) + os.sep  # plain strings: one lstat per file is the cost
    for stamp in entry.files:
        try:
            st = os.lstat(base + stamp.path)
        except OSError:
            return False
        if st.st_size != stamp.size or st.st_mtime_ns != stamp.mtime_ns or not _regular(st.st_mode):
            return False
    if entry.tree:
        expected = {s.path for s in entry.files if s.path.startswith(name + "/")}
        found = 0
        for dirpath, _dirs, filenames in os.walk(package_dir / name):
            rel = os.path.relpath(dirpath, package_dir)
            for f in filenames:
                if f"{rel}/{f}" not in expected:
                    return False  # a foreign file, e.g. a killed copy's temp file
                found += 1
        if found != len(expected):
            return False
    return True


def _suffix(codec: str) -> str:
    # Only a copy needs it; the codec registry is not loaded on a no-op build.
    from mlbuild.rules.codecs.registry import VALUE_SUFFIX

    return VALUE_SUFFIX[codec]


def _has_staging(package_dir: Path) -> bool:
    try:
        return any(name.startswith(STAGING_PREFIX) for name in os.listdir(package_dir))
    except OSError:
        return False


def _regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)


class Materializer:
    """Writes requested outputs into one workspace's ``mlbuild-out/``.

    ``ensure_local(refs)`` makes the blobs of ``refs`` present in ``cas`` (from a remote cache,
    say) and answers whether they are; digests are checked while copying.
    """

    def __init__(self, out_root: Path, cas: CAS, ensure_local: Callable[[list[ArtifactRef]], bool],
                 result_digests: ResultDigests | None = None) -> None:
        self.out_root = out_root
        self.cas = cas
        self.ensure_local = ensure_local
        self._markers: dict[str, Markers] = {}
        self._checked: dict[tuple[Label, str], bool] = {}
        self._package_dirs: dict[str, Path] = {}
        self._digest = result_digests or ResultDigests()

    def package_dir(self, label: Label) -> Path:
        found = self._package_dirs.get(label.package)
        if found is None:
            found = self._package_dirs[label.package] = self.out_root / label.package if label.package else self.out_root
        return found

    def _package_markers(self, label: Label, reload: bool = False) -> Markers:
        if reload or label.package not in self._markers:
            self._markers[label.package] = _load(self.package_dir(label))
        return self._markers[label.package]

    def is_current(self, label: Label, result: ActionResult) -> bool:
        """True when ``mlbuild-out/`` already holds exactly this result of ``label``, untouched."""
        digest = self._digest(result)
        known = self._checked.get((label, digest))
        if known is None:
            entry = self._package_markers(label).targets.get(label.name)
            known = entry is not None and entry.result == digest and _intact(self.package_dir(label), label.name, entry)
            self._checked[(label, digest)] = known
        return known

    def materialize(self, items: list[tuple[Label, ActionResult]]) -> None:
        """Bring every target's outputs up to date, one package (under its lock) at a time."""
        by_package: dict[str, list[tuple[Label, ActionResult]]] = {}
        for label, result in items:
            todo = by_package.setdefault(label.package, [])
            if not self.is_current(label, result):
                todo.append((label, result))
        for package, todo in by_package.items():
            package_dir = self.package_dir(Label(package, "_"))
            self._check_inside(package_dir, package)
            if not todo:
                # Nothing to copy; a killed build's staging folder is still cleared away.
                if _has_staging(package_dir):
                    with _package_lock(package_dir):
                        self._clear_staging(package_dir)
                continue
            try:
                with _package_lock(package_dir):
                    self._clear_staging(package_dir)
                    for label, result in todo:
                        self._checked.pop((label, self._digest(result)), None)
                        self._package_markers(label, reload=True)  # another build may have done it
                        if not self.is_current(label, result):
                            self._one(label, result)
            except OSError as exc:
                raise UserError(_write_error(todo[0][0], package_dir, exc)) from None

    def _check_inside(self, package_dir: Path, package: str) -> None:
        """Outputs never land outside mlbuild-out/ (a link inside it pointing away, say)."""
        root = Path(os.path.realpath(self.out_root))
        real = Path(os.path.realpath(package_dir))
        if real != root and root not in real.parents:
            raise UserError(f"//{package}: its output folder {package_dir} leads to {real}, outside {self.out_root}; "
                            "remove that link (or run `mlbuild clean`)")

    def _clear_staging(self, package_dir: Path) -> None:
        # Under the lock no other build is staging here: what is left is a killed build's.
        with os.scandir(package_dir) as entries:
            for e in entries:
                if e.name.startswith(STAGING_PREFIX) or (e.name.startswith(MARKERS) and e.name.endswith(".tmp")):
                    _remove(Path(e.path))

    def _one(self, label: Label, result: ActionResult) -> None:
        lost = UserError(f"{label}: its cached outputs are missing or corrupt; rebuild it with --no-cache")
        if not self.ensure_local(list(result.outputs)):
            raise lost
        package_dir = self.package_dir(label)
        name = label.name
        staging = package_dir / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        staging.mkdir()
        files: list[Stamp] = []
        value_name: str | None = None
        tree = False
        try:
            for ref in result.outputs:
                if ref.codec == "tree":
                    tree = True
                    files += self._stage_tree(ref.digest, staging / "files", name)
                else:
                    value_name = f"{name}.value{_suffix(ref.codec)}"
                    copy_verified(self.cas, ref.digest, staging / value_name)
                    st = os.lstat(staging / value_name)
                    files.append(Stamp(value_name, st.st_size, st.st_mtime_ns))
        except (CorruptBlob, MissingBlob):
            _remove(staging)
            raise lost from None
        markers = self._markers[label.package]
        # From here on the marker names nothing for this target until its files are complete.
        if markers.targets.pop(name, None) is not None:
            _store(package_dir, markers)
        current = package_dir / name
        if os.path.lexists(current) and not (current / MARKERS).exists():  # never another package's folder
            os.rename(current, staging / "old")
        if tree:
            os.rename(staging / "files", current)
        for entry in os.listdir(package_dir):
            if entry.startswith(f"{name}.value.") and entry != value_name:
                _remove(package_dir / entry)
        if value_name is not None:
            os.replace(staging / value_name, package_dir / value_name)
        markers.targets[name] = Materialized(self._digest(result), files, tree)
        _store(package_dir, markers)
        self._checked[(label, self._digest(result))] = True
        _remove(staging)

    def _stage_tree(self, digest: str, dest: Path, name: str) -> list[Stamp]:
        dest.mkdir()
        stamps = []
        made: set[Path] = {dest}
        for entry in read_tree(self.cas, digest):
            target = dest / entry.path
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            copy_verified(self.cas, entry.digest, target, entry.executable)
            st = os.lstat(target)
            stamps.append(Stamp(f"{name}/{entry.path}", st.st_size, st.st_mtime_ns))
        return stamps


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _write_error(label: Label, where: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full: free space and build again (the cache is intact)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "no permission to write there: fix its permissions or run `mlbuild clean`"
    else:
        hint = "build again once it is writable (the cache is intact)"
    return f"{label}: cannot write its outputs under {where}: {exc.strerror or exc}; {hint}"
