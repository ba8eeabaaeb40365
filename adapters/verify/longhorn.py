"""Verify a Longhorn backup from its backupstore: every block, and optionally the filesystem.

The format follows longhorn/backupstore (``backupstore.go``, ``config.go``, ``util.go``,
``deltablock.go``, ``util/util.go``, ``types.go``):

- ``backup_<name>.cfg`` lists ``Blocks`` as ``{"Offset": <int>, "BlockChecksum": <hex>}``, one per
  block of the volume that holds data, sorted by offset; block size is the ``backup-block-size``
  parameter or 2 MiB (``DEFAULT_BLOCK_SIZE``).
- a block lives at ``<volume dir>/blocks/<c[0:2]>/<c[2:4]>/<c>.blk`` where ``c`` is its checksum:
  the first 64 hex digits of the SHA-512 of the *uncompressed* block (``util.GetChecksum``).
- it is compressed with the backup's ``CompressionMethod`` (``lz4`` frame, ``gzip`` or ``none``;
  empty means ``gzip``, the legacy default in ``loadBackup``). On restore, Longhorn retries a block
  with the other of gzip/lz4 when the magic number says it was written with it
  (``DecompressAndVerifyWithFallback``), so verification accepts that too and says so.
- a restore writes each block at its offset into a device of the volume's size (``volume.cfg``
  ``Size``); ``--deep`` does the same into a sparse file and runs the filesystem's own read-only
  check on it.

Memory stays bounded whatever the volume size: ``workers`` blocks are in memory at once (each is
written to the image by the thread that checked it); only the block list (about 100 bytes per
2 MiB block) grows with the volume.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import json
import os
import re
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import lz4.block
import lz4.frame

from adapters import backupstore
from adapters.errors import AdapterError, Cancelled, NotFound
from adapters.progress import Hooks, Progress, one_line
from adapters.s3 import ObjectStore
from adapters.subprocesses import run
from adapters.verify import BackupKind, Verification, VerificationOutcome
from adapters.verify.scratch import ScratchConfig, check_space, human, scratch_dir

DEFAULT_BLOCK_SIZE = 2 << 20
BLOCK_SIZE_PARAMETER = "backup-block-size"  # go-common-libs backup.LonghornBackupParameterBackupBlockSize
CHECKSUM_LENGTH = 64  # util.PreservedChecksumLength
WORKERS = 8
_CHECKSUM = re.compile(r"^[0-9a-f]{64}$")
_QUANTITY = re.compile(r"^(\d+)(Ki|Mi|Gi|k|M|G)?$")
_UNITS = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 10**3, "M": 10**6, "G": 10**9}
TOOL_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
            "LC_ALL": "C"}


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    LZ4 = "lz4"


class Filesystem(StrEnum):
    EXT4 = "ext4"
    XFS = "xfs"
    UNKNOWN = "unknown"


def checksum(block: bytes) -> str:
    """Longhorn's block checksum: SHA-512 of the uncompressed block, first 64 hex digits."""
    return hashlib.sha512(block).hexdigest()[:CHECKSUM_LENGTH]


def block_key(root: str, volume: str, block_checksum: str) -> str:
    """``getBlockFilePath``: ``<volume dir>blocks/<c[0:2]>/<c[2:4]>/<c>.blk``."""
    c = block_checksum
    return f"{backupstore.longhorn_volume_dir(volume, root)}blocks/{c[0:2]}/{c[2:4]}/{c}.blk"


@dataclass(frozen=True)
class Block:
    offset: int
    checksum: str


@dataclass(frozen=True)
class Plan:
    """What one backup's cfg says a restore will write."""

    volume: str
    backup: str
    volume_size: int
    block_size: int
    compression: Compression
    blocks: tuple[Block, ...]
    snapshot_created: datetime | None


# --- reading the cfg files ----------------------------------------------------------------------

def _unquote(value: Any) -> str:
    """A Go ``,string`` string field is stored as a JSON string inside the string."""
    text = "" if value is None else str(value)
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return str(json.loads(text))
        except ValueError:
            return text
    return text


def _json(store: ObjectStore, key: str) -> dict[str, Any]:
    raw = store.read(key)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _damaged(f"{key} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _damaged(f"{key} is not a JSON object")
    return data


class Damaged(Exception):
    """The backup itself is damaged; the message names what broke."""


def _damaged(message: str) -> Damaged:
    return Damaged(message)


def block_size_of(parameters: dict[str, Any] | None) -> int:
    """``getBlockSizeFromParameters``: a Kubernetes quantity, or 2 MiB when unset or zero."""
    value = str((parameters or {}).get(BLOCK_SIZE_PARAMETER) or "").strip()
    if not value:
        return DEFAULT_BLOCK_SIZE
    match = _QUANTITY.match(value)
    if not match:
        raise _damaged(f"backup parameter {BLOCK_SIZE_PARAMETER}={value!r} is not a size")
    size = int(match[1]) * _UNITS[match[2]]
    return size or DEFAULT_BLOCK_SIZE


def _compression(value: Any, where: str) -> Compression:
    text = _unquote(value) or Compression.GZIP.value  # LEGACY_COMPRESSION_METHOD
    try:
        return Compression(text)
    except ValueError:
        raise _damaged(f"{where}: unknown CompressionMethod {text!r}") from None


def _blocks(raw: Any, key: str, volume_size: int, block_size: int) -> tuple[Block, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _damaged(f"{key}: Blocks is not a list")
    blocks = []
    for index, item in enumerate(raw):
        try:
            offset = int(item["Offset"])
            sum_ = str(item["BlockChecksum"])
        except (KeyError, TypeError, ValueError):
            raise _damaged(f"{key}: block entry {index} has no Offset/BlockChecksum") from None
        if not _CHECKSUM.match(sum_):
            raise _damaged(f"{key}: block at offset {offset} has a malformed checksum {sum_!r}")
        if offset < 0 or offset % block_size or offset + block_size > volume_size:
            raise _damaged(f"{key}: block offset {offset} is outside the {volume_size}-byte volume "
                           f"or not a multiple of the {block_size}-byte block size")
        blocks.append(Block(offset, sum_))
    return tuple(sorted(blocks, key=lambda b: b.offset))


def load_plan(store: ObjectStore, root: str, volume: str, backup: str | None = None) -> Plan:
    """Read ``volume.cfg`` and the backup's cfg (the volume's last backup by default).

    Raises NotFound when the volume or backup does not exist, AdapterError when the backup is
    still in progress, and ``Damaged`` when a cfg cannot be what Longhorn wrote.
    """
    vkey = backupstore.longhorn_volume_cfg_key(root, volume)
    try:
        vol = _json(store, vkey)
    except NotFound:
        raise NotFound(f"Longhorn volume {volume!r} has no backups in {store.location}") from None
    name = backup or _unquote(vol.get("LastBackupName"))
    if not name:
        raise NotFound(f"Longhorn volume {volume!r} has no completed backup in {store.location}")
    bkey = backupstore.longhorn_backup_cfg_key(root, volume, name)
    try:
        cfg = _json(store, bkey)
    except NotFound:
        raise NotFound(f"Longhorn volume {volume!r} has no backup {name!r} in "
                       f"{store.location}") from None
    if not cfg.get("CreatedTime"):
        raise AdapterError(f"backup {name} of {volume} is still in progress: verify it once it "
                           "completes")
    try:
        volume_size = int(vol.get("Size") or 0)
    except (TypeError, ValueError):
        raise _damaged(f"{vkey}: Size {vol.get('Size')!r} is not a number") from None
    block_size = block_size_of(cfg.get("Parameters"))
    if volume_size <= 0 or volume_size % block_size:
        raise _damaged(f"{vkey}: volume size {volume_size} is not a positive multiple of the "
                       f"{block_size}-byte block size")
    return Plan(
        volume=volume,
        backup=name,
        volume_size=volume_size,
        block_size=block_size,
        compression=_compression(cfg.get("CompressionMethod"), bkey),
        blocks=_blocks(cfg.get("Blocks"), bkey, volume_size, block_size),
        snapshot_created=backupstore.parse_time(_unquote(cfg.get("SnapshotCreatedAt")) or None),
    )


def pvc_of(store: ObjectStore, root: str, volume: str) -> str:
    """``namespace/pvc`` from the last backup's ``KubernetesStatus`` label (set by Longhorn's
    backup REST handler, which recurring jobs use: longhorn-manager ``api/snapshot.go``), or ""."""
    try:
        vol = _json(store, backupstore.longhorn_volume_cfg_key(root, volume))
        name = _unquote(vol.get("LastBackupName"))
        if not name:
            return ""
        cfg = _json(store, backupstore.longhorn_backup_cfg_key(root, volume, name))
        status = json.loads((cfg.get("Labels") or {}).get("KubernetesStatus") or "{}")
    except (NotFound, Damaged, ValueError, TypeError, AttributeError):
        return ""
    pvc, namespace = status.get("pvcName"), status.get("namespace")
    return f"{namespace}/{pvc}" if pvc and namespace else ""


# --- checking blocks ----------------------------------------------------------------------------

@dataclass
class _Checked:
    block: Block
    read: int
    problem: str = ""
    note: str = ""


_LZ4_MAGIC = b"\x04\x22\x4d\x18"


def _lz4(raw: bytes, limit: int) -> bytes:
    """An LZ4 frame as Longhorn's Go writer makes it (pierrec/lz4 v4 defaults: 4 MiB blocks,
    content checksum, no content size): a block of at most 4 MiB is one frame block, decoded
    straight with ``lz4.block`` (``lz4.frame`` takes ten times as long without a content size,
    growing its buffer). Any other shape goes through ``lz4.frame``. The frame's own checksums
    are not needed: the block's SHA-512 is checked afterwards."""
    if len(raw) > 11 and raw[:4] == _LZ4_MAGIC:
        flags = raw[4]
        pos = 7 + (8 if flags & 0x08 else 0) + (4 if flags & 0x01 else 0)
        size = int.from_bytes(raw[pos:pos + 4], "little")
        stored, size = size & 0x80000000, size & 0x7FFFFFFF
        start, end = pos + 4, pos + 4 + size
        after = end + (4 if flags & 0x10 else 0)
        if 0 < size <= limit and raw[after:after + 4] == b"\0\0\0\0":
            block = raw[start:end]
            return bytes(block) if stored else lz4.block.decompress(block, uncompressed_size=limit)
    return lz4.frame.decompress(raw)


def _decompress(method: Compression, raw: bytes, limit: int = DEFAULT_BLOCK_SIZE) -> bytes:
    if method is Compression.LZ4:
        return _lz4(raw, limit)
    if method is Compression.GZIP:
        return gzip.decompress(raw)
    return raw


_FALLBACK = {Compression.LZ4: Compression.GZIP, Compression.GZIP: Compression.LZ4}


def _where(block: Block) -> str:
    return f"block at offset {block.offset} ({block.offset / (1 << 20):.0f} MiB, {block.checksum}.blk)"


def _check_one(store: ObjectStore, root: str, plan: Plan, block: Block,
               sink: Callable[[Block, bytes], None] | None) -> _Checked:
    try:
        raw = store.read(block_key(root, plan.volume, block.checksum))
    except NotFound:
        return _Checked(block, 0, problem=f"{_where(block)} is missing from the store")
    note = ""
    try:
        data = _decompress(plan.compression, raw, plan.block_size)
    except (RuntimeError, OSError, EOFError, zlib.error, lz4.block.LZ4BlockError) as exc:
        other = _FALLBACK.get(plan.compression)
        try:
            if other is None:
                raise
            data = _decompress(other, raw, plan.block_size)
            note = f"{_where(block)} is {other}-compressed although the backup says " \
                   f"{plan.compression}; Longhorn's restore falls back to {other} for it"
        except (RuntimeError, OSError, EOFError, zlib.error, lz4.block.LZ4BlockError):
            return _Checked(block, len(raw), problem=f"{_where(block)} cannot be decompressed "
                            f"as {plan.compression}: {one_line(exc, 120)}")
    if len(data) > plan.block_size:
        return _Checked(block, len(raw), problem=f"{_where(block)} holds {len(data)} bytes, "
                        f"more than the {plan.block_size}-byte block size")
    actual = checksum(data)
    if actual != block.checksum:
        return _Checked(block, len(raw), problem=f"{_where(block)} is corrupt: its content hashes "
                        f"to {actual[:16]}..., not {block.checksum[:16]}...")
    if sink is not None:
        sink(block, data)  # in this thread: the bytes never wait in a queue
    return _Checked(block, len(raw), note=note)


@dataclass
class _Tally:
    started: float = field(default_factory=time.monotonic)
    read: int = 0
    done: int = 0
    notes: list[str] = field(default_factory=list)


def _stream(store: ObjectStore, root: str, plan: Plan, hooks: Hooks, *,
            sink: Callable[[Block, bytes], None] | None, workers: int, max_rate: int,
            tally: _Tally) -> str:
    """Check every block; results are taken in offset order, so the first problem returned is
    the one at the lowest offset. Up to ``4 * workers`` blocks are queued (their results hold no
    data), ``workers`` of them in memory at once; a block already proven (same checksum) is not
    fetched again unless its bytes are needed for the image (``sink``)."""
    proven: set[str] = set()
    todo = collections.deque(plan.blocks)
    window: collections.deque[Future[_Checked]] = collections.deque()
    total = len(plan.blocks)
    next_report = time.monotonic() + 5.0
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="verify-block") as pool:
        try:
            while todo or window:
                while todo and len(window) < 4 * workers:
                    block = todo.popleft()
                    if sink is None and block.checksum in proven:
                        tally.done += 1
                        continue
                    proven.add(block.checksum)
                    _throttle(tally, max_rate)
                    window.append(pool.submit(_check_one, store, root, plan, block, sink))
                if not window:
                    continue
                result = window.popleft().result()
                tally.read += result.read
                tally.done += 1
                if result.problem:
                    return result.problem
                if result.note and len(tally.notes) < 3:
                    tally.notes.append(result.note)
                if hooks.cancelled():
                    raise Cancelled(f"verification of {plan.volume} backup {plan.backup} was "
                                    "cancelled; its scratch space is removed")
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + 5.0
                    hooks.report(Progress(f"{tally.done}/{total} blocks checked, "
                                          f"{human(tally.read)} read", target=plan.volume,
                                          status="running"))
            return ""
        finally:
            for future in window:
                future.cancel()


def _throttle(tally: _Tally, max_rate: int) -> None:
    """Hold back so that bytes read stay within ``max_rate`` bytes per second."""
    if max_rate <= 0:
        return
    ahead = tally.read / max_rate - (time.monotonic() - tally.started)
    if ahead > 0:
        time.sleep(min(ahead, 1.0))


# --- the filesystem check -----------------------------------------------------------------------

def detect_filesystem(image: Path) -> Filesystem:
    """By the superblock magic: ext2/3/4 0xEF53 at byte 1080, XFS ``XFSB`` at byte 0."""
    with image.open("rb") as f:
        head = f.read(2048)
    if head[:4] == b"XFSB":
        return Filesystem.XFS
    if head[1080:1082] == b"\x53\xef":
        return Filesystem.EXT4
    return Filesystem.UNKNOWN


@dataclass(frozen=True)
class FsReport:
    filesystem: Filesystem
    clean: bool
    problem: str = ""
    files: int = 0
    used_bytes: int = 0


def _capture(argv: list[str], hooks: Hooks, what: str) -> tuple[int, list[str]]:
    lines: list[str] = []

    def keep(line: str) -> None:
        if len(lines) < 2000:
            lines.append(line)

    code = run(argv, hooks=hooks, on_line=keep, env=TOOL_ENV, what=what, grace=5.0)
    return code, lines


def _first_errors(lines: list[str], skip: tuple[str, ...] = ()) -> str:
    interesting = [ln.strip() for ln in lines if ln.strip() and not ln.startswith(skip)]
    return one_line("; ".join(interesting[:3]), 300) or "no output"


def check_ext4(image: Path, hooks: Hooks) -> FsReport:
    """``e2fsck -fn``: forced, read-only; exit 0 clean, 4 = errors left uncorrected."""
    code, lines = _capture(["e2fsck", "-fn", str(image)], hooks, "e2fsck")
    if code & 8 or code & 16:
        raise AdapterError(f"e2fsck could not check the restored image (exit {code}): "
                           f"{_first_errors(lines)}")
    if code != 0:
        return FsReport(Filesystem.EXT4, False, f"e2fsck -fn found errors (exit {code}): "
                        f"{_first_errors(lines, ('e2fsck ', 'Pass ', 'Warning!'))}")
    files = used = 0
    for line in lines:
        m = re.search(r"(\d+)/(\d+) files .*?, (\d+)/(\d+) blocks", line)
        if m:
            files, used = int(m[1]), int(m[3])
    _, dump = _capture(["dumpe2fs", "-h", str(image)], hooks, "dumpe2fs")
    size = next((int(ln.split(":")[1]) for ln in dump if ln.startswith("Block size:")), 0)
    return FsReport(Filesystem.EXT4, True, files=files, used_bytes=used * size)


def check_xfs(image: Path, hooks: Hooks) -> FsReport:
    """``xfs_repair -n -f``: no-modify mode on an image file; exit 1 means corruption."""
    code, lines = _capture(["xfs_repair", "-n", "-f", str(image)], hooks, "xfs_repair")
    if code != 0:
        return FsReport(Filesystem.XFS, False, f"xfs_repair -n found problems (exit {code}): "
                        f"{_first_errors(lines, ('Phase', '        - '))}")
    _, sb = _capture(["xfs_db", "-r", "-f", "-c", "sb 0", "-c",
                      "print icount ifree dblocks fdblocks blocksize", str(image)], hooks, "xfs_db")
    values = {k.strip(): int(v) for k, _, v in (ln.partition("=") for ln in sb)
              if v.strip().isdigit()}
    files = values.get("icount", 0) - values.get("ifree", 0)
    used = (values.get("dblocks", 0) - values.get("fdblocks", 0)) * values.get("blocksize", 0)
    return FsReport(Filesystem.XFS, True, files=files, used_bytes=used)


FS_CHECKS: dict[Filesystem, Callable[[Path, Hooks], FsReport]] = {
    Filesystem.EXT4: check_ext4, Filesystem.XFS: check_xfs}


# --- the verification ---------------------------------------------------------------------------

def verify(store: ObjectStore, root: str, volume: str, backup: str | None = None, *,
           deep: bool = False, scratch: ScratchConfig | None = None, hooks: Hooks | None = None,
           workers: int = WORKERS, max_rate: int = 0) -> Verification:
    """Verify one backup of a Longhorn volume (its last backup by default).

    Every block is fetched, decompressed and checked against its checksum; the first bad or
    missing block is reported with its offset. With ``deep``, the blocks are written into a
    sparse image of the volume's size in scratch space and the filesystem's own read-only check
    runs on it. ``max_rate`` caps the bytes read per second (0 = no cap).
    """
    hooks = hooks or Hooks()
    started = time.monotonic()
    at = datetime.now(UTC)
    tally = _Tally()

    def result(outcome: VerificationOutcome, backup_id: str, checked: list[str], problem: str = "",
               **details: str | int | float) -> Verification:
        return Verification(BackupKind.LONGHORN, volume, backup_id, outcome, at,
                            time.monotonic() - started, tally.read, tuple(checked), problem,
                            dict(details))

    try:
        plan = load_plan(store, root, volume, backup)
    except Damaged as exc:
        return result(VerificationOutcome.FAILED, backup or "", [], str(exc))
    hooks.report(Progress(f"backup {plan.backup}: {len(plan.blocks)} blocks of "
                          f"{human(plan.block_size)}, {plan.compression}, volume "
                          f"{human(plan.volume_size)}", target=volume, status="started"))
    checked: list[str] = []
    if not deep:
        problem = _stream(store, root, plan, hooks, sink=None, workers=workers,
                          max_rate=max_rate, tally=tally)
        if problem:
            return result(VerificationOutcome.FAILED, plan.backup, checked, problem)
        checked.append(f"{len(plan.blocks)} blocks present with matching checksums")
        return result(VerificationOutcome.OK, plan.backup, checked + tally.notes, blocks=len(plan.blocks))
    if scratch is None:
        raise AdapterError("a deep verification needs scratch space: set verify.scratch_dir")
    check_space(scratch, len(plan.blocks) * plan.block_size, f"deep verification of {volume}")
    with scratch_dir(scratch) as work:
        image = work / "volume.img"
        with image.open("wb") as f:
            f.truncate(plan.volume_size)
            fd = f.fileno()
            problem = _stream(store, root, plan, hooks, sink=lambda b, d: _pwrite(fd, d, b.offset),
                              workers=workers, max_rate=max_rate, tally=tally)
        if problem:
            return result(VerificationOutcome.FAILED, plan.backup, checked, problem)
        checked.append(f"{len(plan.blocks)} blocks present with matching checksums")
        checked.extend(tally.notes)
        return _check_image(image, hooks, checked, result, plan)


def _pwrite(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _check_image(image: Path, hooks: Hooks, checked: list[str],
                 result: Callable[..., Verification], plan: Plan) -> Verification:
    fs = detect_filesystem(image)
    if fs is Filesystem.UNKNOWN:
        checked.append("no ext4 or XFS filesystem at the start of the volume: filesystem "
                       "not checked")
        return result(VerificationOutcome.OK, plan.backup, checked, blocks=len(plan.blocks))
    hooks.report(Progress(f"checking the {fs} filesystem of the restored image read-only",
                          target=plan.volume, status="running"))
    report = FS_CHECKS[fs](image, hooks)
    if not report.clean:
        return result(VerificationOutcome.FAILED, plan.backup, checked, report.problem, filesystem=fs.value)
    checked.append(f"{fs} filesystem clean: {report.files} files, {human(report.used_bytes)} used")
    return result(VerificationOutcome.OK, plan.backup, checked, blocks=len(plan.blocks), filesystem=fs.value,
                  files=report.files, used_bytes=report.used_bytes)
