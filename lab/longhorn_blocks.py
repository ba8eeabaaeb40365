"""Real Longhorn blocks for the lab's volume backups, so that /dr verify has something true to read.

Each volume gets a real ext4 filesystem, built without mounting by ``mkfs.ext4 -d`` from a small
directory of files, in a sparse image of the volume's size; the image is cut into 2 MiB blocks
laid out as longhorn/backupstore does (``blocks/<c[0:2]>/<c[2:4]>/<c>.blk``, ``c`` = the first 64
hex digits of the SHA-512 of the uncompressed block, lz4-compressed as by pierrec/lz4 v4; see
adapters/verify/longhorn.py). Only the image's data extents are read (SEEK_DATA), as Longhorn backs
up only a snapshot's data. One volume's store copy has lost a block (``DAMAGED``), so the demo can
show a verification that fails.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from adapters.verify import longhorn as lv
from lab import store_writers as sw
from lab import world

DAMAGED = "archive"  # the PVC whose backups lost a block in the store
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


@dataclass(frozen=True)
class VolumeBlocks:
    blocks: list[dict[str, object]]  # the cfg's Blocks list
    objects: dict[str, bytes]  # key (below the volume dir) -> compressed block


def volume_files(root: Path, vol: world.VolumeSpec) -> None:
    """The files on the lab's volume (what its backups hold; the lab's kubelet mounts them)."""
    (root / "data").mkdir(parents=True)
    (root / "README").write_text(f"{vol.namespace}/{vol.pvc}: files of the lab's volume\n")
    seed = hashlib.sha256(vol.pvc.encode()).digest()
    for i in range(3):  # deterministic content, so blocks dedupe across lab runs
        chunk = hashlib.sha512(seed + bytes([i])).digest() * 4096
        (root / "data" / f"part-{i}.bin").write_bytes(chunk)


def _data_chunks(image: Path, block: int) -> Iterator[tuple[int, bytes]]:
    """The image's block-aligned chunks that hold data, found with SEEK_DATA/SEEK_HOLE."""
    with image.open("rb") as f:
        fd, size, offset = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError:
                return
            end = os.lseek(fd, start, os.SEEK_HOLE)
            for at in range(start - start % block, end, block):
                f.seek(at)
                yield at, f.read(block)
            offset = end + (-end % block)


@functools.cache
def volume_blocks(vol: world.VolumeSpec) -> VolumeBlocks:
    """Blocks of a real ext4 filesystem of the volume's size (a sparse file, a few MiB on disk)."""
    size = vol.size_gi * 1024**3
    blocks: list[dict[str, object]] = []
    objects: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="drbot-lab-fs-") as tmp:
        files, image = Path(tmp) / "files", Path(tmp) / "volume.img"
        volume_files(files, vol)
        with image.open("wb") as f:
            f.truncate(size)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "nodiscard", "-d", str(files), str(image)],
                       check=True, env=_ENV, capture_output=True)
        for offset, chunk in _data_chunks(image, lv.DEFAULT_BLOCK_SIZE):
            if chunk.count(0) == len(chunk):
                continue
            chunk = chunk.ljust(lv.DEFAULT_BLOCK_SIZE, b"\0")
            digest = lv.checksum(chunk)
            blocks.append({"Offset": offset, "BlockChecksum": digest})
            key = f"blocks/{digest[0:2]}/{digest[2:4]}/{digest}.blk"
            objects[key] = sw.compress(lv.Compression.LZ4, chunk)
    if vol.pvc == DAMAGED and blocks:
        lost = str(blocks[len(blocks) // 2]["BlockChecksum"])
        objects.pop(f"blocks/{lost[0:2]}/{lost[2:4]}/{lost}.blk", None)
    return VolumeBlocks(blocks, objects)
