"""Object bytes as files in a local directory: the embedded default.

Layout under the root: `<tenant>/<first two hex digits>/<sha256>`, and `_tmp/` for writes
in progress (`_` is in no tenant name). Every path is walked from the root's descriptor
one component at a time with O_NOFOLLOW: a symlink anywhere below the root is refused,
never followed. A put writes a temp file, fsyncs it, renames it into place and fsyncs the
directory, so a file under its final name is always whole and durable; a crash leaves at
worst a temp file (removed on open) or bytes no object names (swept by the service).
All file I/O runs on the store's own threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, TypeVar

from invoker.objects.model import SHA256_HEX, TENANT, BlobRef, BlobSource

T = TypeVar("T")

TMP_DIR = "_tmp"
SHARD = re.compile(r"^[0-9a-f]{2}$")
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir(parent: int, name: str, *, create: bool = False) -> int | None:
    """A directory below `parent`, opened without following a symlink (a symlink raises
    OSError); None when it is missing and `create` is false."""
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
            os.fsync(parent)  # the new entry is durable before anything goes into it
        except FileExistsError:
            pass
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return None


def open_path(root: int, parts: list[str], *, create: bool = False) -> int | None:
    """The directory `root/parts[0]/parts[1]/...`, each step without following symlinks."""
    current = os.dup(root)
    for part in parts:
        try:
            below = open_dir(current, part, create=create)
        finally:
            os.close(current)
        if below is None:
            return None
        current = below
    return current


def open_file(directory: int, name: str) -> IO[bytes] | None:
    """A regular file in `directory` opened for reading, never through a symlink; None
    when it is missing."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=directory)
    except FileNotFoundError:
        return None
    return os.fdopen(fd, "rb")


def _unlink(directory: int, name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=directory)


def _entries(directory: int, *, dirs: bool) -> Iterator[str]:
    """Names of the subdirectories (or regular files) in `directory`; links are neither."""
    with os.scandir(directory) as found:
        for entry in found:
            is_dir = entry.is_dir(follow_symlinks=False)
            if is_dir if dirs else entry.is_file(follow_symlinks=False):
                yield entry.name


def _is_file(directory: int, name: str) -> bool:
    try:
        mode = os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return False
    return stat.S_ISREG(mode)


class FileSource:
    """An opened blob file, read on the store's threads."""

    def __init__(self, file: IO[bytes], run: Callable[..., Awaitable[object]]) -> None:
        self._file = file
        self._run = run

    async def read(self, size: int) -> bytes:
        chunk = await self._run(self._file.read, size)
        assert isinstance(chunk, bytes)
        return chunk

    async def close(self) -> None:
        await self._run(self._file.close)


class LocalBlobs:
    """The `Blobs` protocol over the directory `root`."""

    def __init__(self, root: Path) -> None:
        self._root_path = root
        self._root = -1
        self._tmp = -1
        # Writing and hashing bytes must not wait behind other reads, nor block them.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="nimbus-objects-io")

    async def _io(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> None:
        """Create the root and its temp directory; remove half-written temp files."""
        await self._io(self._open)

    def _open(self) -> None:
        self._root_path.mkdir(parents=True, exist_ok=True)
        self._root = os.open(self._root_path, DIR_FLAGS)
        tmp = open_dir(self._root, TMP_DIR, create=True)
        assert tmp is not None
        self._tmp = tmp
        for name in list(_entries(self._tmp, dirs=False)):
            _unlink(self._tmp, name)

    async def close(self) -> None:
        """Close the threads (after what they are doing), then the directories."""
        self._pool.shutdown(wait=True)
        for fd in (self._tmp, self._root):
            if fd >= 0:
                os.close(fd)
        self._root = self._tmp = -1

    async def put(self, ref: BlobRef, data: bytes) -> None:
        """Write the bytes durably under their address, unless a file is there."""
        await self._io(self._put, ref, data)

    def _put(self, ref: BlobRef, data: bytes) -> None:
        shard = open_path(self._root, [ref.tenant, ref.sha256[:2]], create=True)
        assert shard is not None
        try:
            if _is_file(shard, ref.sha256):
                return
            temp = f"{uuid.uuid4().hex}.part"
            try:
                with os.fdopen(os.open(temp, WRITE_FLAGS, 0o600, dir_fd=self._tmp), "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                # Replaces whatever else has the name (a link included) without following it.
                os.rename(temp, ref.sha256, src_dir_fd=self._tmp, dst_dir_fd=shard)
            except BaseException:
                _unlink(self._tmp, temp)
                raise
            os.fsync(shard)
        finally:
            os.close(shard)

    async def get(self, ref: BlobRef) -> BlobSource | None:
        """The file opened for reading (it stays readable if it is removed meanwhile)."""
        opened = await self._io(self._get, ref)
        return None if opened is None else FileSource(opened, self._io)

    def _get(self, ref: BlobRef) -> IO[bytes] | None:
        shard = open_path(self._root, [ref.tenant, ref.sha256[:2]])
        if shard is None:
            return None
        try:
            return open_file(shard, ref.sha256)
        finally:
            os.close(shard)

    async def delete(self, ref: BlobRef) -> None:
        """Remove the file (a link in its place is removed, not followed)."""
        await self._io(self._delete, ref)

    def _delete(self, ref: BlobRef) -> None:
        shard = open_path(self._root, [ref.tenant, ref.sha256[:2]])
        if shard is not None:
            try:
                _unlink(shard, ref.sha256)
            finally:
                os.close(shard)

    async def orphans(self, named: Callable[[], Awaitable[set[BlobRef]]]) -> list[BlobRef]:
        """Files that no object names."""
        stored = await self._io(self._stored)
        return sorted(stored - await named(), key=lambda r: (r.tenant, r.sha256))

    def _stored(self) -> set[BlobRef]:
        found: set[BlobRef] = set()
        for tenant in [t for t in _entries(self._root, dirs=True) if TENANT.fullmatch(t)]:
            for shard in [s for s in self._subdirs([tenant]) if SHARD.fullmatch(s)]:
                found.update(
                    BlobRef(tenant, name)
                    for name in self._files([tenant, shard])
                    if SHA256_HEX.fullmatch(name) and name.startswith(shard)
                )
        return found

    def _subdirs(self, parts: list[str]) -> list[str]:
        return self._listing(parts, dirs=True)

    def _files(self, parts: list[str]) -> list[str]:
        return self._listing(parts, dirs=False)

    def _listing(self, parts: list[str], *, dirs: bool) -> list[str]:
        directory = open_path(self._root, parts)
        if directory is None:
            return []
        try:
            return list(_entries(directory, dirs=dirs))
        finally:
            os.close(directory)
