"""Content-addressed storage: blobs on disk under their digest, verified on every read."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from mlbuild.cache.digest import CHUNK, copy_hashing, digest_bytes, digest_file


class CorruptBlob(Exception):
    """A blob's bytes do not match its digest. It has been removed from the CAS."""

    def __init__(self, digest: str, path: Path) -> None:
        super().__init__(f"blob {digest} is corrupt (its content does not match its digest); removed {path}")
        self.digest = digest


class MissingBlob(KeyError):
    """The CAS holds no blob with this digest."""


# A blob's temp file is created read-only (its fd still writes), which saves a chmod per blob;
# a temp file that others fill by path (``temp_file``) is created writable and chmodded on install.
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class CAS:
    """Blobs under ``root/ab/abcdef…``. Writes are atomic (temp file + rename)."""

    def __init__(self, root: str | os.PathLike[str], *, create: bool = True) -> None:
        self.root = Path(root)
        self.tmp = self.root.parent / "tmp"
        if create:  # not for a cache on a read-only medium
            self.root.mkdir(parents=True, exist_ok=True)
            self.tmp.mkdir(parents=True, exist_ok=True)
        # Plain strings: pathlib costs more than the syscalls for thousands of small blobs.
        self._root = os.fspath(self.root)
        self._tmp = os.fspath(self.tmp)
        self._shards: set[str] = set()  # shard folders this process has seen exist

    def path(self, digest: str) -> Path:
        return Path(self._str_path(digest))

    def _str_path(self, digest: str) -> str:
        return f"{self._root}/{digest[:2]}/{digest}"

    def path_str(self, digest: str) -> str:
        """``path`` as a plain string, cheaper in loops over thousands of blobs."""
        return self._str_path(digest)

    def has(self, digest: str) -> bool:
        return os.path.exists(self._str_path(digest))

    def _install(self, tmp_path: str, digest: str, *, chmod: bool = False) -> None:
        dest = self._str_path(digest)
        if os.path.exists(dest):
            os.unlink(tmp_path)
            return
        shard = digest[:2]
        if shard not in self._shards:
            os.makedirs(f"{self._root}/{shard}", exist_ok=True)
            self._shards.add(shard)
        if chmod:
            os.chmod(tmp_path, 0o444)
        try:
            os.replace(tmp_path, dest)
        except FileNotFoundError:
            # the shard folder went away since we saw it (a gc or a wiped cache): make it again
            os.makedirs(f"{self._root}/{shard}", exist_ok=True)
            os.replace(tmp_path, dest)

    def _tempfile(self, mode: int = 0o444) -> tuple[int, str]:
        while True:
            tmp_path = f"{self._tmp}/blob-p{os.getpid()}-{secrets.token_hex(8)}"
            try:
                return os.open(tmp_path, _CREATE, mode), tmp_path
            except FileExistsError:
                continue

    def _write_new(self, data: bytes | bytearray | memoryview, digest: str) -> None:
        fd, tmp_path = self._tempfile()
        try:
            view = memoryview(data).cast("B")
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            os.unlink(tmp_path)
            raise
        os.close(fd)
        self._install(tmp_path, digest)

    def put_bytes(self, data: bytes | bytearray | memoryview) -> str:
        digest = digest_bytes(data)
        if not self.has(digest):
            self._write_new(data, digest)
        return digest

    def put_verified(self, digest: str, data: bytes | bytearray | memoryview) -> str:
        """Store ``data`` as blob ``digest`` only if it hashes to ``digest``; returns the digest
        the bytes actually have (the caller treats any other answer as a corrupt download:
        nothing was written)."""
        actual = digest_bytes(data)
        if actual == digest:
            self._write_new(data, digest)  # installing skips a blob that is there already
        return actual

    def put_file(self, src: str | os.PathLike[str]) -> tuple[str, int]:
        """Copy a file in, hashing while copying; returns (digest, size)."""
        if os.stat(src).st_size < CHUNK:
            with open(src, "rb") as f:
                data = f.read()
            return self.put_bytes(data), len(data)
        fd, tmp_path = self._tempfile()
        try:
            digest, size = copy_hashing(src, fd)
        except BaseException:
            os.unlink(tmp_path)
            raise
        self._install(tmp_path, digest)
        return digest, size

    def temp_file(self) -> str:
        """A new empty file in the CAS's temp folder, for a caller that fills it and then
        ``adopt_file``s it (renamed in place: one file created per blob, not two)."""
        fd, tmp_path = self._tempfile(0o600)
        os.close(fd)
        return tmp_path

    def temp_path(self) -> str:
        """A fresh path in the CAS's temp folder, not created yet, for a caller that writes a
        new file there and then ``adopt_file``s it (renamed in place). Better than
        ``temp_file`` for large writes: rewriting a file that exists, even empty, makes ext4
        flush it to disk on close."""
        return f"{self._tmp}/blob-p{os.getpid()}-{secrets.token_hex(16)}"

    def adopt_file(self, src: str | os.PathLike[str], digest: str) -> None:
        """Move a file whose digest the caller already verified into the CAS."""
        if os.path.dirname(os.fspath(src)) == self._tmp:
            self._install(os.fspath(src), digest, chmod=True)
            return
        fd, tmp_path = self._tempfile(0o600)
        os.close(fd)
        shutil.move(os.fspath(src), tmp_path)
        self._install(tmp_path, digest, chmod=True)

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
