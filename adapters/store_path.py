"""The object store on a mounted path (an NFS export or a local directory): keys are paths
under the base, listings in S3's key order, writes through a temporary file renamed into
place, and the errors of a path that went away (a stale NFS handle) reported as unreachable.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from adapters.errors import AdapterError, NotFound, Unreachable
from adapters.store_config import ObjectInfo

_TMP_PREFIX = ".drbot-upload-"
_UNREACHABLE_ERRNOS = {errno.ESTALE, errno.EIO, errno.ENOTCONN, errno.EHOSTDOWN, errno.ETIMEDOUT}


class PathBackend:
    """The store's operations on a directory."""

    def __init__(self, base: Path, count: Callable[[int], None]) -> None:
        self.base = base
        self.location = str(base)
        self._count = count

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) \
                or "\0" in key:
            raise AdapterError(f"invalid object key {key!r} for {self.location}")
        return self.base.joinpath(*parts)

    def may_write(self, key: str) -> bool:
        """The directory holding ``key`` is writable for this process (``access(2)``)."""
        self._check_base()
        directory = self._path(key).parent
        if not os.access(directory, os.W_OK | os.X_OK):
            raise AdapterError(f"permission denied to write in {directory}: give drbot's user "
                               "write access to the path")
        return True

    def _check_base(self) -> None:
        if not self.base.is_dir():
            raise NotFound(
                f"{self.location} does not exist or is not a directory: mount the NFS export "
                "there or fix the store URL")

    def _os_error(self, exc: OSError, action: str, target: str) -> AdapterError:
        where = f"{self.location}/{target}".rstrip("/")
        if isinstance(exc, PermissionError):
            return AdapterError(
                f"permission denied to {action} {where}: give drbot's user access to the path")
        if exc.errno in _UNREACHABLE_ERRNOS:
            return Unreachable(
                f"{where} cannot be reached ({exc.strerror}) while trying to {action}: check "
                "the NFS mount and the server")
        return AdapterError(f"cannot {action} {where}: {exc.strerror or exc}")

    def _entries(self, directory: str) -> list[tuple[str, bool, os.stat_result]]:
        """(name, is_dir, stat) of one directory's entries; [] if the directory is absent."""
        self._count(1)
        path = self._path(directory) if directory else self.base
        try:
            with os.scandir(path) as it:
                out = []
                for entry in it:
                    if entry.name.startswith(_TMP_PREFIX):
                        continue  # another writer's file, not yet renamed into place
                    try:
                        is_dir = entry.is_dir(follow_symlinks=False)
                        out.append((entry.name, is_dir, entry.stat(follow_symlinks=False)))
                    except FileNotFoundError:
                        continue  # removed while we looked
                return out
        except (FileNotFoundError, NotADirectoryError):
            self._check_base()
            return []
        except OSError as exc:
            raise self._os_error(exc, "list", directory) from exc

    def _walk(self, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
        """Every file whose key starts with ``prefix`` (unordered)."""
        directory, _, start = prefix.rpartition("/")
        stack = [(directory, start)]
        while stack:
            current, name_prefix = stack.pop()
            for name, is_dir, st in self._entries(current):
                if not name.startswith(name_prefix):
                    continue
                key = f"{current}/{name}" if current else name
                if is_dir:
                    stack.append((key, ""))
                elif _is_regular(st):
                    yield key, st

    def list(self, prefix: str, delimiter: str | None) -> Iterator[ObjectInfo]:
        if delimiter == "/":
            directory, _, start = prefix.rpartition("/")
            found = [(f"{directory}/{name}" if directory else name, st)
                     for name, is_dir, st in self._entries(directory)
                     if not is_dir and name.startswith(start) and _is_regular(st)]
        else:
            found = [(key, st) for key, st in self._walk(prefix)
                     if not delimiter or delimiter not in key[len(prefix):]]
        for key, st in sorted(found, key=lambda item: item[0].encode()):
            yield ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list_prefixes(self, prefix: str, delimiter: str) -> list[str]:
        if delimiter == "/":
            directory, _, start = prefix.rpartition("/")
            found = {f"{directory}/{name}/" if directory else f"{name}/"
                     for name, is_dir, _ in self._entries(directory)
                     if is_dir and name.startswith(start)}
        else:
            found = set()
            for key, _ in self._walk(prefix):
                rest = key[len(prefix):]
                if delimiter in rest:
                    found.add(prefix + rest[:rest.index(delimiter) + len(delimiter)])
        return sorted(found, key=str.encode)

    def read(self, key: str) -> bytes:
        path = self._path(key)
        self._count(1)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._check_base()
            raise NotFound(f"{self.location}/{key} does not exist") from None
        except OSError as exc:
            raise self._os_error(exc, "read", key) from exc

    def download(self, key: str, path: Path) -> int:
        source = self._path(key)
        self._count(1)
        try:
            with source.open("rb") as src, path.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            self._check_base()
            raise NotFound(f"{self.location}/{key} does not exist") from None
        except OSError as exc:
            raise self._os_error(exc, "read", key) from exc
        return path.stat().st_size

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        self._count(1)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            self._check_base()
            return None
        except OSError as exc:
            raise self._os_error(exc, "stat", key) from exc
        if not _is_regular(st):
            return None
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def _write(self, key: str, writer: Callable[[int], None]) -> None:
        """Write atomically (temporary file, then rename) so a reader never sees half a file."""
        self._check_base()
        path = self._path(key)
        self._count(1)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=path.parent)
            try:
                writer(fd)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise self._os_error(exc, "write", key) from exc

    def put(self, key: str, data: bytes) -> None:
        def write(fd: int) -> None:
            with os.fdopen(fd, "wb") as out:
                out.write(data)

        self._write(key, write)

    def put_file(self, key: str, path: Path) -> None:
        if not path.is_file():
            raise NotFound(f"cannot upload {path} to {self.location}/{key}: no such local file")

        def write(fd: int) -> None:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)

        self._write(key, write)

    def delete(self, keys: list[str]) -> None:
        self._check_base()
        for key in keys:
            path = self._path(key)
            self._count(1)
            try:
                path.unlink(missing_ok=True)
            except IsADirectoryError:
                continue
            except OSError as exc:
                raise self._os_error(exc, "delete", key) from exc
            self._prune_dirs(path.parent)

    def _prune_dirs(self, directory: Path) -> None:
        """Remove directories left empty (S3 has no directories, so none should linger)."""
        while directory != self.base and self.base in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent


def _is_regular(st: os.stat_result) -> bool:
    return stat.S_ISREG(st.st_mode)
