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

import os
import threading
import uuid
from typing import Any

import msgspec
import xxhash

from mlbuild.cache.digest import digest_file
from mlbuild.cache.records import ActionResult
from mlbuild.engine.interfaces import InvalidEntry
from mlbuild.remote.signing import BadSignature, open_envelope, seal

__all__ = ["InvalidEntry", "FsspecRemoteCache", "SMALL_BLOB"]

# A downloaded blob up to this size is hashed from one read; larger ones in chunks.
SMALL_BLOB = 4 * 1024 * 1024

# Protocols whose files can be renamed atomically; the others get one atomic PUT per object.
_RENAMING = {"file", "local"}

_enc = msgspec.msgpack.Encoder()
_dec_action = msgspec.msgpack.Decoder(ActionResult)


class FsspecRemoteCache:
    """``RemoteCache`` (engine/interfaces.py) over one fsspec URL; connects on first use."""

    def __init__(self, url: str, *, storage_options: dict[str, Any] | None = None,
                 signing_key: bytes | None = None) -> None:
        self.url = url
        self.signing_key = signing_key
        self._options = dict(storage_options or {})
        self._fs: Any = None
        self._root = ""
        self._lock = threading.Lock()

    # -- the filesystem, opened lazily so that a build that never asks never connects ------

    @property
    def fs(self) -> Any:
        with self._lock:
            if self._fs is None:
                from fsspec.core import url_to_fs

                self._fs, root = url_to_fs(self.url, **self._options)
                self._root = root.rstrip("/")
            return self._fs

    @property
    def renames(self) -> bool:
        protocol = self.fs.protocol
        protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        return bool(protocols & _RENAMING)

    def action_path(self, key: str) -> str:
        self.fs  # noqa: B018 - resolves the root
        return f"{self._root}/ac/{key}"

    def blob_path(self, digest: str) -> str:
        self.fs  # noqa: B018 - resolves the root
        return f"{self._root}/cas/{digest[:2]}/{digest}"

    def _tmp_path(self) -> str:
        return f"{self._root}/tmp/{uuid.uuid4().hex}"

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

    def fetch_blob(self, digest: str, dest: str, size_hint: int | None = None) -> str:
        """Download a blob to ``dest`` and return the digest of the bytes written.

        fsspec's own ``get_file`` moves the bytes (a kernel copy on local disks, one streamed
        GET on object stores: never the whole blob in memory); the digest is then taken from
        the file just written, which the page cache still holds. The caller compares it with
        the one it asked for before using the file.
        """
        self.fs.get_file(self.blob_path(digest), dest)
        if size_hint is not None and size_hint <= SMALL_BLOB:
            with open(dest, "rb") as f:
                return xxhash.xxh3_128_hexdigest(f.read())
        return digest_file(dest)[0]

    def push_blob(self, digest: str, src: str) -> None:
        """Upload a local file as blob ``digest`` (the caller knows it matches), atomically."""
        path = self.blob_path(digest)
        if self.renames:
            tmp = self._tmp_path()
            self.fs.makedirs(os.path.dirname(tmp), exist_ok=True)
            self.fs.put_file(src, tmp)
            self.fs.makedirs(os.path.dirname(path), exist_ok=True)
            self.fs.mv(tmp, path)
        else:
            self.fs.put_file(src, path)

    def _write_bytes(self, path: str, data: bytes) -> None:
        if self.renames:
            tmp = self._tmp_path()
            self.fs.makedirs(os.path.dirname(tmp), exist_ok=True)
            self.fs.pipe_file(tmp, data)
            self.fs.makedirs(os.path.dirname(path), exist_ok=True)
            self.fs.mv(tmp, path)
        else:
            self.fs.pipe_file(path, data)
