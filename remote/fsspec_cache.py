"""The remote cache over any fsspec filesystem: ``file://``, ``s3://``, ``gs://``, ``memory://``.

Layout under the URL's path (the *prefix*)::

    <prefix>/ac/<action key>          an Envelope (see signing.py) around an ActionResult
    <prefix>/cas/<d[:2]>/<digest>     a blob, under its xxh3-128 digest
    <prefix>/tmp/<random>             uploads in flight (filesystems with rename only)

Publication is atomic: on a filesystem with rename (local disks, NFS) a file is written under
``tmp/`` and renamed into place; on an object store a single PUT (or a multipart upload, which
appears only when completed) is atomic already. Writers MUST upload an entry's blobs before the
entry, so a reader never sees an entry whose blobs are missing. Two writers of one entry both
write complete envelopes; the last rename (or PUT) wins and either is valid.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import threading
from typing import Any

import msgspec

from mlbuild.cache.digest import copy_hashing, digest_bytes, digest_file
from mlbuild.cache.records import ActionResult
from mlbuild.engine.interfaces import InvalidEntry, RemoteCacheSettings
from mlbuild.remote.signing import BadSignature, open_envelope, seal

__all__ = ["InvalidEntry", "FsspecRemoteCache", "SMALL_BLOB", "open_remote_cache", "storage_options"]

# A downloaded blob up to this size is hashed from one read; larger ones in chunks.
SMALL_BLOB = 4 * 1024 * 1024
# Chunk of the one-pass local copy (read, hash, write): small enough to stay in the CPU cache
# between the three, which keeps it near the kernel's own copy.
COPY_CHUNK = 256 * 1024

# Protocols whose files can be renamed atomically; the others get one atomic PUT per object.
_RENAMING = {"file", "local"}

_enc = msgspec.msgpack.Encoder()
_dec_action = msgspec.msgpack.Decoder(ActionResult)


def storage_options(url: str, timeout: float, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """fsspec storage options for ``url``: ``given`` (``MLBUILD_REMOTE_OPTIONS``) over defaults
    that bound every S3 request by ``timeout`` and honour ``AWS_ENDPOINT_URL(_S3)``."""
    given = dict(given or {})
    if not url.startswith(("s3://", "s3a://")):
        return given
    options: dict[str, Any] = {
        "config_kwargs": {"connect_timeout": timeout, "read_timeout": max(timeout, 30.0),
                          "retries": {"max_attempts": 2, "mode": "standard"}},
    }
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    for name, value in given.items():
        if isinstance(value, dict) and isinstance(options.get(name), dict):
            options[name] = {**options[name], **value}
        else:
            options[name] = value
    return options


def open_remote_cache(settings: RemoteCacheSettings) -> FsspecRemoteCache:
    """The remote cache the engine's resolved settings name (``REMOTE_CACHES`` in backends.py)."""
    return FsspecRemoteCache(settings.url, storage_options=storage_options(settings.url, settings.timeout, settings.options),
                             signing_key=settings.signing_key)


class FsspecRemoteCache:
    """``RemoteCache`` (engine/interfaces.py) over one fsspec URL; connects on first use."""

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None,
                 signing_key: bytes | None = None) -> None:
        self.url = url
        self.signing_key = signing_key
        self._options = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""
        self._local = False
        self._lock = threading.Lock()

    # -- the filesystem, opened lazily so that a build that never asks never connects ------

    @property
    def fs(self) -> Any:
        if self._fs is not None:
            return self._fs
        with self._lock:
            if self._fs is None:
                from fsspec.core import url_to_fs

                fs, root = url_to_fs(self.url, **self._options)
                protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
                self._root = root.rstrip("/")
                self._local = bool(protocols & _RENAMING)
                self._fs = fs
            return self._fs

    @property
    def renames(self) -> bool:
        """Whether the remote is a local (or mounted) filesystem, where files are renamed into
        place; its paths are then OS paths, and blobs move with plain OS calls, which cost
        less per small file than fsspec's own."""
        self.fs  # noqa: B018 - resolves the protocol
        return self._local

    def action_path(self, key: str) -> str:
        self.fs  # noqa: B018 - resolves the root
        return f"{self._root}/ac/{key}"

    def blob_path(self, digest: str) -> str:
        self.fs  # noqa: B018 - resolves the root
        return f"{self._root}/cas/{digest[:2]}/{digest}"

    def _tmp_path(self) -> str:
        return f"{self._root}/tmp/{secrets.token_hex(16)}"

    # -- action entries --------------------------------------------------------------------

    def get_action(self, key: str) -> ActionResult | None:
        """The entry under ``key``, None if there is none; InvalidEntry if it can't be trusted."""
        try:
            data = self.fs.cat_file(self.action_path(key))
        except FileNotFoundError:
            return None
        try:
            result = _dec_action.decode(open_envelope(data, self.signing_key))
        except BadSignature as exc:
            raise InvalidEntry(f"action {key}: {exc}") from None
        except msgspec.DecodeError as exc:
            raise InvalidEntry(f"action {key}: undecodable entry ({exc})") from None
        if result.key != key:
            raise InvalidEntry(f"action {key}: the entry is for another action ({result.key})")
        return result

    def put_action(self, result: ActionResult) -> None:
        """Publish an entry; its blobs MUST be uploaded already."""
        self._write_bytes(self.action_path(result.key), seal(_enc.encode(result), self.signing_key))

    # -- blobs -----------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return bool(self.fs.exists(self.blob_path(digest)))

    def read_blob(self, digest: str, max_size: int) -> bytes | None:
        """A blob's bytes (unverified: the caller hashes them before use), or None when it is
        larger than ``max_size`` (then nothing beyond ``max_size + 1`` bytes was read)."""
        path = self.blob_path(digest)
        if self.renames:
            with open(path, "rb", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                if size > max_size:
                    return None
                # sized by the file, not by max_size: a 4 MiB buffer per 16 KiB blob costs more
                # than the read; one byte over shows a file that grew meanwhile
                data = f.read(size + 1)
        else:
            try:
                data = self.fs.cat_file(path, start=0, end=max_size + 1)
            except OSError as exc:
                # An empty object has no byte 0: S3 answers a ranged read of it "416 range not
                # satisfiable" (s3fs: EINVAL). An empty __init__.py is a common blob.
                if exc.errno != errno.EINVAL or self.fs.size(path) != 0:
                    raise
                data = b""
        return None if len(data) > max_size else bytes(data)

    def fetch_blob(self, digest: str, dest: str, size_hint: int | None = None) -> str:
        """Download a blob to ``dest`` and return the digest of the bytes written.

        On a local filesystem, in one pass: each chunk is read, hashed and written, never the
        whole blob in memory. On an object store fsspec's ``get_file`` moves the bytes (ranged
        GETs in parallel for a large object, which a single hashed stream could not match) and
        the digest is then taken from the file just written, still in the page cache (about
        0.15 s per GiB, next to about 20 s for the transfer). The caller compares the digest with
        the one it asked for before using the file.
        """
        path = self.blob_path(digest)
        if self.renames:
            return copy_hashing(path, dest, COPY_CHUNK)[0]
        self.fs.get_file(path, dest)
        if size_hint is not None and size_hint <= SMALL_BLOB:
            with open(dest, "rb") as f:
                return digest_bytes(f.read())
        return digest_file(dest)[0]

    def push_blob(self, digest: str, src: str) -> None:
        """Upload a local file as blob ``digest`` (the caller knows it matches), atomically."""
        path = self.blob_path(digest)
        if self.renames:
            tmp = self._tmp_path()
            _copy_to_new(src, tmp)
            _rename_into_place(tmp, path)
        else:
            self.fs.put_file(src, path)

    def _write_bytes(self, path: str, data: bytes) -> None:
        if self.renames:
            tmp = self._tmp_path()
            os.makedirs(os.path.dirname(tmp), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            _rename_into_place(tmp, path)
        else:
            self.fs.pipe_file(path, data)


def _copy_to_new(src: str, tmp: str) -> None:
    """Copy a local file to the new file ``tmp``, making its folder on first use. A small file
    moves in one read and one write (shutil.copyfile by path costs several more stats per
    blob), a large one by a kernel copy into a file it creates (copying into a file that exists
    already, even an empty one, makes ext4 write it back on close: 3x slower here)."""
    with open(src, "rb", buffering=0) as fin:
        size = os.fstat(fin.fileno()).st_size
        data = fin.read(size + 1) if size <= SMALL_BLOB else None
    for attempt in (0, 1):
        try:
            if data is None:
                shutil.copyfile(src, tmp)
            else:
                with open(tmp, "xb", buffering=0) as fout:
                    view = memoryview(data)
                    while view:
                        view = view[fout.write(view):]
            return
        except FileNotFoundError:
            if attempt:  # the folder is there now: it was ``src`` that is missing
                raise
            os.makedirs(os.path.dirname(tmp), exist_ok=True)  # another thread may make it too
        except BaseException:
            _discard(tmp)
            raise


def _discard(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rename_into_place(tmp: str, path: str) -> None:
    """Rename a finished upload to its final path, making the folder on first use (asking
    first would cost a stat per blob); a failed rename removes the upload."""
    try:
        try:
            os.replace(tmp, path)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


