"""Writing into a cloud space so that a file appears under its final name only when complete and verified.

By what the storage can do:

- **Local disk** (``file://``): the bytes go into an unnamed file in the target's folder (Linux
  ``O_TMPFILE``), are read back and compared byte for byte with the bytes that were hashed, and only then
  get their name (``linkat``). A crash leaves nothing behind. Where unnamed files are not available, the
  same happens under a hidden temporary name (``.<name>.<token>.part``) that is then renamed.
- **Any other fsspec filesystem with rename**: the hidden temporary name, read back and checked (size and
  sha256), then renamed. A crash leaves at most a ``.part`` file, which the next run of the import removes.
- **S3** (``s3://``): an object store has no rename, but a single PUT is itself atomic (the key shows the
  whole object or nothing) and carries the sha256 we computed (``x-amz-checksum-sha256``), which S3 checks
  against the body before it stores the object. The answer is checked too: the ETag, which the server
  computes as the MD5 of the bytes it received, must equal ours, or the stored sha256 must equal ours; if
  neither can be shown the object is read back and hashed. Files too large for memory take the
  temporary-name route (multipart upload, read back, server-side copy).

Either way the sha256 that ends up in the import's manifest is that of the bytes the destination holds.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import posixpath
import threading
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

#: Bytes read from the source and hashed at a time when a file is streamed rather than held in memory.
CHUNK = 4 * 2**20


class Cancelled(Exception):
    """The import was cancelled while this file was being copied; nothing was left under its final name."""


class VerificationError(OSError):
    """What the destination holds is not what was sent (size or checksum differ)."""


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as lowercase hex (as ``sha256sum`` prints it)."""
    return hashlib.sha256(data).hexdigest()


def read_file(fs: AbstractFileSystem, path: str) -> bytes:
    """The whole of a file (a plain ``open`` on local disk: fsspec's wrapper costs as much as a copy)."""
    if isinstance(fs, LocalFileSystem):
        with open(path, "rb") as fh:
            return fh.read()
    return fs.cat_file(path)


def is_temporary(name: str) -> bool:
    """Whether ``name`` (a base name) is one of our temporary names, left behind by an interrupted copy."""
    return name.startswith(".") and name.endswith(".part")


class Throttle:
    """A shared byte budget per second for all copies of one server (0: no limit).

    Operators may cap what imports draw from shared storage; each copy reserves its bytes and waits for its
    turn, waking early when its import is cancelled.
    """

    def __init__(self, bytes_per_second: float) -> None:
        self.rate = float(bytes_per_second)
        self._lock = threading.Lock()
        self._next = time.monotonic()

    def take(self, nbytes: int, cancel: threading.Event) -> None:
        """Wait until ``nbytes`` more may pass; Cancelled if ``cancel`` is set meanwhile."""
        if self.rate <= 0:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + nbytes / self.rate
            delay = self._next - now
        if delay > 0 and cancel.wait(delay):
            raise Cancelled


class Committer:
    """Verified, atomic writes on a filesystem with rename (the general case)."""

    def __init__(self, fs: AbstractFileSystem) -> None:
        self.fs = fs

    def temporary(self, path: str) -> str:
        """A hidden, unique name beside ``path`` for its bytes while they are written."""
        head, name = posixpath.split(path)
        return posixpath.join(head, f".{name}.{uuid.uuid4().hex[:8]}.part")

    def put_bytes(self, path: str, data: bytes, sha256: str) -> None:
        """Make ``path`` hold ``data`` (whose sha256 is ``sha256``): all of it, checked, or nothing."""
        temp = self.temporary(path)
        try:
            self.fs.pipe_file(temp, data)
            self._verify(temp, len(data), sha256)
            self.fs.mv(temp, path)
        except BaseException:
            self._discard(temp)
            raise

    def put_stream(
        self,
        path: str,
        open_source: Callable[[], IO[bytes]],
        size: int,
        cancel: threading.Event,
        throttle: Throttle,
    ) -> str:
        """Copy a source too large to hold in memory, chunk by chunk; returns its sha256."""
        temp = self.temporary(path)
        digest = hashlib.sha256()
        written = 0
        try:
            with open_source() as src, self.fs.open(temp, "wb") as dst:
                while chunk := src.read(CHUNK):
                    if cancel.is_set():
                        raise Cancelled
                    throttle.take(len(chunk), cancel)
                    digest.update(chunk)
                    dst.write(chunk)
                    written += len(chunk)
            if written != size:
                raise VerificationError(f"{path}: the source gave {written} bytes, the store listed {size}")
            sha256 = digest.hexdigest()
            self._verify(temp, size, sha256)
            self.fs.mv(temp, path)
            return sha256
        except BaseException:
            self._discard(temp)
            raise

    def digest(self, path: str) -> tuple[int, str]:
        """Size and sha256 of what ``path`` holds now (resume checks files found under final names)."""
        digest = hashlib.sha256()
        size = 0
        with self.fs.open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return size, digest.hexdigest()

    def _verify(self, path: str, size: int, sha256: str) -> None:
        actual_size, actual = self.digest(path)
        if actual_size != size or actual != sha256:
            raise VerificationError(
                f"{path}: holds {actual_size} bytes with sha256 {actual}, expected {size} bytes with {sha256}"
            )

    def _discard(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.rm_file(path)


class LocalCommitter(Committer):
    """Local disk, with system calls instead of fsspec's layers (small files are many, and each one counts).

    Where Linux allows it, the bytes go into an unnamed file in the target's folder (``O_TMPFILE``), are read
    back through the same descriptor and compared byte for byte with the bytes that were hashed (so the
    file's sha256 is theirs), and only then get their name (``linkat``): one directory entry, as a plain copy
    makes, and nothing at all left behind by a crash. Elsewhere the same check runs on a hidden temporary
    name that is then renamed into place.
    """

    #: Cleared on the first filesystem that refuses unnamed files (or a system without /proc).
    unnamed_files = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")

    def put_bytes(self, path: str, data: bytes, sha256: str) -> None:
        """Make ``path`` hold ``data``: written, read back, compared, then named (see the class)."""
        path = self.fs._strip_protocol(path)
        if self.unnamed_files:
            try:
                fd = os.open(posixpath.dirname(path), os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o666)
            except OSError:  # EOPNOTSUPP, EISDIR: this filesystem has no unnamed files
                LocalCommitter.unnamed_files = False
            else:
                try:
                    self._write_checked(fd, data, path)
                    self._name(fd, path)
                finally:
                    os.close(fd)
                return
        temp = self.temporary(path)
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)  # the umask applies
        try:
            try:
                self._write_checked(fd, data, path)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    @staticmethod
    def _write_checked(fd: int, data: bytes, path: str) -> None:
        view = memoryview(data)
        written = 0
        while written < len(data):
            written += os.write(fd, view[written:])
        back = os.pread(fd, len(data) + 1, 0)
        if back != data:
            raise VerificationError(
                f"{path}: reads back {len(back)} bytes that differ from the {len(data)} written"
            )

    def _name(self, fd: int, path: str) -> None:
        """Give the unnamed file ``fd`` its name; an existing file (a state file saved again) is replaced."""
        # linkat(AT_SYMLINK_FOLLOW) on /proc/self/fd/N names the open file; Python calls linkat rather than
        # link only when a directory descriptor is given, and with an absolute path that one is not used.
        source = f"/proc/self/fd/{fd}"
        try:
            os.link(source, path, src_dir_fd=fd, follow_symlinks=True)
        except FileExistsError:
            temp = self.temporary(path)
            os.link(source, temp, src_dir_fd=fd, follow_symlinks=True)
            try:
                os.replace(temp, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
                raise


class S3Committer(Committer):
    """Verified, atomic writes on S3: one checksummed PUT per file (see the module's docstring)."""

    #: Larger files are streamed (multipart) through a temporary key instead of being held in memory.
    single_put_limit = 5 * 2**30

    def put_bytes(self, path: str, data: bytes, sha256: str) -> None:
        """PUT ``data`` under ``path`` with its sha256 for the server to check, then check the answer."""
        if len(data) >= self.single_put_limit:
            super().put_bytes(path, data, sha256)
            return
        sha_b64 = base64.b64encode(bytes.fromhex(sha256)).decode()
        answer = self.fs.pipe_file(path, data, ChecksumAlgorithm="SHA256", ChecksumSHA256=sha_b64) or {}
        etag = str(answer.get("ETag", "")).strip('"')
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        if etag == md5 or answer.get("ChecksumSHA256") == sha_b64:
            return
        try:  # a server that shows neither (an encrypting gateway, say): read it back
            self._verify(path, len(data), sha256)
        except BaseException:
            self._discard(path)
            raise

    def digest(self, path: str) -> tuple[int, str]:
        """Size and sha256 from the object's stored checksum when it has one, else by reading it."""
        bucket, key, _ = self.fs.split_path(path)
        try:
            head = self.fs.call_s3("head_object", Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except Exception:
            head = {}
        stored = head.get("ChecksumSHA256")
        if stored and "-" not in stored and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            return int(head["ContentLength"]), base64.b64decode(stored).hex()
        return super().digest(path)


def committer_for(fs: AbstractFileSystem) -> Committer:
    """The committer that suits the filesystem ``fs``."""
    protocols: Any = fs.protocol
    names = {protocols} if isinstance(protocols, str) else set(protocols)
    if names & {"s3", "s3a"}:
        return S3Committer(fs)
    if isinstance(fs, LocalFileSystem):
        return LocalCommitter(fs)
    return Committer(fs)
