"""Content-addressed storage: blobs on disk under their digest, verified on every read."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import xxhash

from mlbuild.cache.digest import CHUNK, digest_bytes, digest_file


class CorruptBlob(Exception):
    """A blob's bytes do not match its digest. It has been removed from the CAS."""

    def __init__(self, digest: str, path: Path) -> None:
        super().__init__(f"blob {digest} is corrupt (its content does not match its digest); removed {path}")
        self.digest = digest


class MissingBlob(KeyError):
    """The CAS holds no blob with this digest."""


class CAS:
    """Blobs under ``root/ab/abcdef…``. Writes are atomic (temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.tmp = self.root.parent / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def _install(self, tmp_path: str, digest: str) -> Path:
        dest = self.path(digest)
        if dest.exists():
            os.unlink(tmp_path)
            return dest
        dest.parent.mkdir(exist_ok=True)
        os.chmod(tmp_path, 0o444)
        os.replace(tmp_path, dest)
        return dest

    def _tempfile(self) -> tuple[int, str]:
        return tempfile.mkstemp(dir=self.tmp, prefix="blob-")

    def put_bytes(self, data: bytes | bytearray | memoryview) -> str:
        digest = digest_bytes(data)
        if self.has(digest):
            return digest
        fd, tmp_path = self._tempfile()
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        self._install(tmp_path, digest)
        return digest

    def put_file(self, src: str | os.PathLike[str]) -> tuple[str, int]:
        """Copy a file in, hashing while copying; returns (digest, size)."""
        if os.stat(src).st_size < CHUNK:
            with open(src, "rb") as f:
                data = f.read()
            return self.put_bytes(data), len(data)
        fd, tmp_path = self._tempfile()
        h = xxhash.xxh3_128()
        size = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        try:
            with open(src, "rb", buffering=0) as fin, os.fdopen(fd, "wb", buffering=0) as fout:
                while n := fin.readinto(view):
                    h.update(view[:n])
                    fout.write(view[:n])
                    size += n
        except BaseException:
            os.unlink(tmp_path)
            raise
        digest = h.hexdigest()
        self._install(tmp_path, digest)
        return digest, size

    def temp_file(self) -> str:
        """A new empty file in the CAS's temp folder, for a caller that fills it and then
        ``adopt_file``s it (renamed in place: one file created per blob, not two)."""
        fd, tmp_path = self._tempfile()
        os.close(fd)
        return tmp_path

    def adopt_file(self, src: str | os.PathLike[str], digest: str) -> None:
        """Move a file whose digest the caller already verified into the CAS."""
        if os.path.dirname(os.fspath(src)) == os.fspath(self.tmp):
            self._install(os.fspath(src), digest)
            return
        fd, tmp_path = self._tempfile()
        os.close(fd)
        shutil.move(os.fspath(src), tmp_path)
        self._install(tmp_path, digest)

    def get_bytes(self, digest: str) -> bytes:
        """The blob's bytes, verified; a corrupt blob is removed and raises CorruptBlob."""
        path = self.path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise MissingBlob(digest) from None
        if digest_bytes(data) != digest:
            self._evict_corrupt(path, digest)
        return data

    def verified_path(self, digest: str) -> Path:
        """The blob's path after checking its content; for large blobs read as files."""
        path = self.path(digest)
        try:
            actual, _ = digest_file(path)
        except FileNotFoundError:
            raise MissingBlob(digest) from None
        if actual != digest:
            self._evict_corrupt(path, digest)
        return path

    def _evict_corrupt(self, path: Path, digest: str) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        raise CorruptBlob(digest, path)

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def delete(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            pass

    def digests(self) -> list[str]:
        return [p.name for sub in self.root.iterdir() if sub.is_dir() for p in sub.iterdir()]
