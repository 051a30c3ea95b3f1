"""Content-addressed artifact files on a local folder or any fsspec URL (``s3://...``).

Every file is named by the sha256 of its bytes: ``{root}/sha256/ab/cd/<digest><suffix>``.
Writes are atomic on local disks (temp file + ``os.replace``) and on object stores (an S3
object appears only once its PUT, or its multipart upload, completes), and idempotent (an
existing digest is not rewritten). A remote store's failure (network, credentials, throttling)
is a :class:`~loopml.errors.StorageError` naming the call and the URL. Every read re-hashes the bytes and refuses a mismatch, so a file
changed on disk after it was registered is never loaded (MITRE ATLAS M0014).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem

from loopml.errors import IntegrityError, LoopmlError, NotFoundError, StorageError, UsageError

_CHUNK = 1 << 20
_HEX = re.compile(r"^[0-9a-f]{64}$")
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9_-]{1,16}){0,2}$")


class ArtifactStore:
    """Content-addressed files under ``root`` (a local path or an fsspec URL)."""

    def __init__(self, root: str) -> None:
        self.root = str(root).rstrip("/") or "/"
        self.fs, self._base = fsspec.core.url_to_fs(self.root)
        self.is_local = isinstance(self.fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    # --- naming -------------------------------------------------------------------------
    def subpath(self, *parts: str) -> str:
        """A path or URL under the root for other layers' files (e.g. ``subpath("predlog")``)."""
        for p in parts:
            if not p or p.startswith("/") or ".." in p.split("/"):
                raise UsageError(
                    f"Artifact sub-path part {p!r} must be a relative name without '..'.",
                    field="subpath",
                )
        return "/".join([self.root, *parts])

    def _key(self, digest: str, suffix: str) -> str:
        digest = _check_digest(digest)
        if not _SUFFIX.match(suffix):
            raise UsageError(
                f"Artifact suffix {suffix!r} must look like '.skops' or '.tar.gz'.",
                field="suffix",
            )
        return f"{self._base}/sha256/{digest[:2]}/{digest[2:4]}/{digest}{suffix}"

    def path_for(self, digest: str, suffix: str = "") -> str:
        """Where the artifact with ``digest`` lives (a local path, or a URL for remote roots)."""
        key = self._key(digest, suffix)
        return key if self.is_local else self.fs.unstrip_protocol(key)

    def _find(self, digest: str) -> str:
        key = self._key(digest, "")
        folder = key.rsplit("/", 1)[0]
        try:
            with self._remote("list", folder):
                names = self.fs.ls(folder, detail=False)
        except FileNotFoundError:
            names = []
        for name in sorted(names):
            base = name.rsplit("/", 1)[-1]
            if base == digest or (base.startswith(digest + ".") and ".tmp" not in base):
                return name
        raise NotFoundError(
            f"No artifact with sha256 {digest} under {self.root}. The registry points at a file "
            f"that is not in this artifact store: check that 'artifacts' in loopml.yaml names "
            f"the same root the version was registered with, or re-register the model.",
            field="digest",
            digest=digest,
        )

    def exists(self, digest: str) -> bool:
        """True when an artifact with this digest is stored (any suffix)."""
        try:
            self._find(digest)
        except NotFoundError:
            return False
        return True

    # --- writing ------------------------------------------------------------------------
    def put_bytes(self, data: bytes, *, suffix: str = "") -> str:
        """Store ``data``; return its sha256 hex digest. Idempotent."""
        digest = hashlib.sha256(data).hexdigest()
        key = self._key(digest, suffix)
        with self._remote("write", key):
            if self.fs.exists(key):
                return digest
            if self.is_local:
                self._write_local(key, lambda f: f.write(data))
            else:
                self.fs.pipe_file(key, data)
        return digest

    def put_file(self, path: str | os.PathLike[str], *, suffix: str = "") -> str:
        """Store a local file, hashing it while streaming; return its sha256 hex digest."""
        h = hashlib.sha256()
        with open(path, "rb") as src:
            for chunk in iter(lambda: src.read(_CHUNK), b""):
                h.update(chunk)
        digest = h.hexdigest()
        key = self._key(digest, suffix)
        with self._remote("write", key):
            if self.fs.exists(key):
                return digest
        if self.is_local:

            def copy(dst: IO[bytes]) -> None:
                with open(path, "rb") as src:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        dst.write(chunk)

            self._write_local(key, copy)
        else:
            with self._remote("write", key):
                self.fs.put_file(os.fspath(path), key)
        if self.get_digest_of(key) != digest:
            self.fs.rm_file(key)
            raise IntegrityError(
                f"{path} changed while it was being stored; nothing was kept. Store it again "
                f"once no other process is writing to it.",
                field="path",
            )
        return digest

    def _write_local(self, key: str, write: Callable[[IO[bytes]], object]) -> None:
        folder = os.path.dirname(key)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, key)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # --- reading ------------------------------------------------------------------------
    def get_digest_of(self, key: str) -> str:
        h = hashlib.sha256()
        with self._remote("read", key), self.fs.open(key, "rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
        return h.hexdigest()

    def get_bytes(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, re-hashed; ``IntegrityError`` on a mismatch."""
        key = self._find(digest)
        with self._remote("read", key):
            data = self.fs.cat_file(key)
        _verify(digest, hashlib.sha256(data).hexdigest(), self._show(key))
        return data

    def local_path(self, digest: str) -> str:
        """A verified local file with the artifact's bytes (remote roots are cached locally)."""
        key = self._find(digest)
        if self.is_local:
            _verify(digest, _sha256_file(key), key)
            return key
        cache = os.path.join(tempfile.gettempdir(), "loopml-artifacts", digest[:2])
        os.makedirs(cache, exist_ok=True)
        target = os.path.join(cache, key.rsplit("/", 1)[-1])
        if not os.path.exists(target):
            fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
            os.close(fd)
            try:
                with self._remote("read", key):
                    self.fs.get_file(key, tmp)
            except BaseException:
                os.unlink(tmp)
                raise
            os.replace(tmp, target)
        _verify(digest, _sha256_file(target), target)
        return target

    @contextmanager
    def open_verified(self, digest: str) -> Iterator[IO[bytes]]:
        """Open a verified local copy of the artifact for reading."""
        with open(self.local_path(digest), "rb") as f:
            yield f

    @contextmanager
    def _remote(self, action: str, key: str) -> Iterator[None]:
        """Turn a remote backend's failure into a :class:`StorageError` (local disks raise
        their own errors, and ``FileNotFoundError`` means absent, not failed)."""
        try:
            yield
        except (LoopmlError, FileNotFoundError):
            raise
        except Exception as exc:
            if self.is_local:
                raise
            raise StorageError(
                f"Could not {action} {self._show(key)} ({type(exc).__name__}: "
                f"{str(exc)[:200]}). Nothing was half-written: an object appears only once "
                f"complete. Check the store's address (AWS_ENDPOINT_URL), the network and "
                f"the credentials (AWS_* variables or profile), then retry.",
                field="artifacts",
            ) from exc

    def _show(self, key: str) -> str:
        return key if self.is_local else self.fs.unstrip_protocol(key)


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_digest(digest: str) -> str:
    if not isinstance(digest, str) or not _HEX.match(digest):
        raise UsageError(
            f"An artifact digest must be 64 lowercase hex characters (a sha256). "
            f"Got {digest!r} instead.",
            field="digest",
        )
    return digest


def _verify(expected: str, actual: str, where: str) -> None:
    if expected != actual:
        raise IntegrityError(
            f"Artifact {where} is damaged or was changed after it was registered: its bytes "
            f"hash to sha256 {actual}, but the registry recorded sha256 {expected}. It was not "
            f"loaded. Restore the file from a backup or re-register the model from its "
            f"training run; if nobody should have write access to the artifact store, treat "
            f"this as tampering and investigate.",
            field="digest",
            expected=expected,
            actual=actual,
            path=where,
        )
