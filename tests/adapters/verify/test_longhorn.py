"""Longhorn verification against real blocks: a real ext4 image (``mkfs.ext4 -d``) cut into
Longhorn's block layout in the S3 emulator, checked block by block and fsck'ed with e2fsck."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.errors import AdapterError, Cancelled, NotFound
from adapters.s3 import ObjectStore
from adapters.verify import VerificationOutcome
from adapters.verify import longhorn as lv
from adapters.verify.scratch import PREFIX, ScratchConfig, sweep
from lab import store_writers as sw
from tests.support import Recorder

CREATED = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
MiB = 1 << 20


def ext4_image(tmp_path: Path, size_mib: int = 24) -> Path:
    """A populated ext4 filesystem built without mounting: ``mkfs.ext4 -d <dir>``."""
    src = tmp_path / "files"
    (src / "app").mkdir(parents=True)
    for i in range(6):
        (src / "app" / f"data-{i}.bin").write_bytes(os.urandom(700_000 + i))
    (src / "README").write_text("the application's files\n")
    image = tmp_path / "fs.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(src), str(image), f"{size_mib}M"],
                   check=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return image


@pytest.fixture
def scratch(tmp_path: Path) -> ScratchConfig:
    return ScratchConfig(str(tmp_path / "scratch"))


def backed_up(store: ObjectStore, tmp_path: Path, **kwargs: object) -> lv.Plan:
    return sw.write_backup(store, "", "pvc-data", "backup-1", ext4_image(tmp_path),
                           created=CREATED, **kwargs)  # type: ignore[arg-type]


def left_in(scratch: ScratchConfig) -> list[str]:
    root = Path(scratch.root)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_sound_backup_passes_block_check_and_e2fsck(s3_store: ObjectStore, tmp_path: Path,
                                                      scratch: ScratchConfig) -> None:
    plan = backed_up(s3_store, tmp_path)
    rec = Recorder()

    result = lv.verify(s3_store, "", "pvc-data", deep=True, scratch=scratch, hooks=rec.hooks)

    assert result.outcome is VerificationOutcome.OK, result.problem
    assert result.backup_id == "backup-1"
    assert result.details["filesystem"] == "ext4"
    assert int(result.details["files"]) >= 8  # 6 files, README, app/, root, lost+found...
    assert int(result.details["used_bytes"]) >= 6 * 700_000
    assert result.bytes_read > 0
    assert any("e2fsck" in str(p) or "filesystem" in p.message for p in rec.progress)
    assert f"{len(plan.blocks)} blocks present with matching checksums" in result.checked
    assert left_in(scratch) == []


@pytest.mark.parametrize("compression", list(lv.Compression))
def test_every_compression_longhorn_writes_is_read(s3_store: ObjectStore, tmp_path: Path,
                                                   compression: lv.Compression) -> None:
    plan = backed_up(s3_store, tmp_path, compression=compression)

    result = lv.verify(s3_store, "", "pvc-data")

    assert result.ok, result.problem
    assert result.checked[0] == f"{len(plan.blocks)} blocks present with matching checksums"


def test_a_non_default_block_size_from_the_backup_parameters(s3_store: ObjectStore,
                                                             tmp_path: Path,
                                                             scratch: ScratchConfig) -> None:
    plan = backed_up(s3_store, tmp_path, block_size=MiB)
    assert all(b.offset % MiB == 0 for b in plan.blocks)

    result = lv.verify(s3_store, "", "pvc-data", deep=True, scratch=scratch)

    assert result.ok, result.problem


def test_one_flipped_byte_in_one_block_fails_naming_its_offset(s3_store: ObjectStore,
                                                              tmp_path: Path) -> None:
    plan = backed_up(s3_store, tmp_path)
    victim = plan.blocks[len(plan.blocks) // 2]
    key = lv.block_key("", "pvc-data", victim.checksum)
    data = bytearray(lv._decompress(lv.Compression.LZ4, s3_store.read(key)))
    data[4242] ^= 0x01
    s3_store.upload(key, sw.compress(lv.Compression.LZ4, bytes(data)))

    result = lv.verify(s3_store, "", "pvc-data")

    assert result.outcome is VerificationOutcome.FAILED
    assert f"block at offset {victim.offset} " in result.problem
    assert "is corrupt" in result.problem


def test_garbage_in_place_of_a_compressed_block_fails(s3_store: ObjectStore,
                                                      tmp_path: Path) -> None:
    plan = backed_up(s3_store, tmp_path)
    victim = plan.blocks[0]
    s3_store.upload(lv.block_key("", "pvc-data", victim.checksum), b"not lz4 at all")

    result = lv.verify(s3_store, "", "pvc-data")

    assert not result.ok
    assert f"block at offset {victim.offset} " in result.problem
    assert "cannot be decompressed as lz4" in result.problem


def test_a_missing_block_fails_naming_the_first_one(s3_store: ObjectStore, tmp_path: Path,
                                                    scratch: ScratchConfig) -> None:
    plan = backed_up(s3_store, tmp_path)
    first, later = plan.blocks[2], plan.blocks[-1]
    s3_store.delete([lv.block_key("", "pvc-data", b.checksum) for b in (later, first)])

    result = lv.verify(s3_store, "", "pvc-data", deep=True, scratch=scratch)

    assert not result.ok
    assert result.problem.startswith(f"block at offset {first.offset} ")
    assert result.problem.endswith("is missing from the store")
    assert left_in(scratch) == []


def test_e2fsck_catches_a_filesystem_damaged_before_the_backup(s3_store: ObjectStore,
                                                               tmp_path: Path,
                                                               scratch: ScratchConfig) -> None:
    image = ext4_image(tmp_path)
    with image.open("r+b") as f:  # zero the group descriptors right after the superblock
        f.seek(4096)
        f.write(b"\0" * 4096)
    sw.write_backup(s3_store, "", "pvc-data", "backup-1", image, created=CREATED)

    shallow = lv.verify(s3_store, "", "pvc-data")
    deep = lv.verify(s3_store, "", "pvc-data", deep=True, scratch=scratch)

    assert shallow.ok  # every block is what Longhorn stored...
    assert not deep.ok  # ...but what it stored does not hold a sound filesystem
    assert deep.problem.startswith("e2fsck -fn found errors")
    assert left_in(scratch) == []


def test_a_volume_without_a_filesystem_is_checked_block_by_block_only(
        s3_store: ObjectStore, tmp_path: Path, scratch: ScratchConfig) -> None:
    raw = tmp_path / "raw.img"
    raw.write_bytes(os.urandom(3 * MiB) + b"\0" * (5 * MiB))
    sw.write_backup(s3_store, "", "pvc-raw", "backup-r", raw, created=CREATED)

    result = lv.verify(s3_store, "", "pvc-raw", deep=True, scratch=scratch)

    assert result.ok
    assert "filesystem not checked" in result.checked[-1]


def test_xfs_is_checked_with_xfs_repair(s3_store: ObjectStore, tmp_path: Path,
                                        scratch: ScratchConfig) -> None:
    image = tmp_path / "xfs.img"
    with image.open("wb") as f:
        f.truncate(320 * MiB)  # mkfs.xfs refuses file systems under 300 MB
    subprocess.run(["mkfs.xfs", "-q", "-f", str(image)], check=True,
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    sw.write_backup(s3_store, "", "pvc-xfs", "backup-x", image, created=CREATED)

    result = lv.verify(s3_store, "", "pvc-xfs", deep=True, scratch=scratch)

    assert result.ok, result.problem
    assert result.details["filesystem"] == "xfs"
    assert int(result.details["files"]) >= 1  # the root directory at least


def test_a_named_backup_is_verified_not_the_last(s3_store: ObjectStore, tmp_path: Path) -> None:
    plan = backed_up(s3_store, tmp_path)
    sw.write_backup(s3_store, "", "pvc-data", "backup-2", ext4_image(tmp_path / "b"),
                    created=CREATED)
    s3_store.delete([lv.block_key("", "pvc-data", plan.blocks[0].checksum)])

    assert lv.verify(s3_store, "", "pvc-data").backup_id == "backup-2"
    older = lv.verify(s3_store, "", "pvc-data", "backup-1")

    assert older.backup_id == "backup-1"
    assert not older.ok


def test_unknown_volume_backup_and_in_progress_backup_are_clear_errors(
        s3_store: ObjectStore, tmp_path: Path) -> None:
    backed_up(s3_store, tmp_path)
    from adapters import backupstore

    s3_store.upload(backupstore.longhorn_backup_cfg_key("", "pvc-data", "backup-run"),
                    sw.longhorn_backup_cfg("pvc-data", "backup-run", None, 0))

    with pytest.raises(NotFound, match="has no backups"):
        lv.verify(s3_store, "", "pvc-nope")
    with pytest.raises(NotFound, match="has no backup 'backup-9'"):
        lv.verify(s3_store, "", "pvc-data", "backup-9")
    with pytest.raises(AdapterError, match="still in progress"):
        lv.verify(s3_store, "", "pvc-data", "backup-run")


def test_a_block_list_pointing_outside_the_volume_fails(s3_store: ObjectStore,
                                                        tmp_path: Path) -> None:
    import json

    from adapters import backupstore

    backed_up(s3_store, tmp_path)
    key = backupstore.longhorn_backup_cfg_key("", "pvc-data", "backup-1")
    cfg = json.loads(s3_store.read(key))
    cfg["Blocks"].append({"Offset": 1 << 40, "BlockChecksum": "ab" * 32})
    s3_store.upload(key, json.dumps(cfg).encode())

    result = lv.verify(s3_store, "", "pvc-data")

    assert not result.ok
    assert f"block offset {1 << 40} is outside" in result.problem


def test_cancel_stops_and_removes_the_scratch_space(s3_store: ObjectStore, tmp_path: Path,
                                                    scratch: ScratchConfig) -> None:
    backed_up(s3_store, tmp_path)
    rec = Recorder(cancel_when=lambda: True)

    with pytest.raises(Cancelled, match="cancelled"):
        lv.verify(s3_store, "", "pvc-data", deep=True, scratch=scratch, hooks=rec.hooks)

    assert left_in(scratch) == []


def test_too_little_scratch_space_refuses_before_reading_blocks(
        s3_store: ObjectStore, tmp_path: Path) -> None:
    backed_up(s3_store, tmp_path)
    small = ScratchConfig(str(tmp_path / "scratch"), max_bytes=MiB)
    before = s3_store.requests

    with pytest.raises(AdapterError, match="needs about .* of scratch space"):
        lv.verify(s3_store, "", "pvc-data", deep=True, scratch=small)

    assert s3_store.requests - before == 2  # volume.cfg and the backup cfg, no block
    assert left_in(small) == []


def test_sweep_removes_what_a_dead_worker_left_and_keeps_live_ones(tmp_path: Path,
                                                                   scratch: ScratchConfig) -> None:
    from adapters.verify.scratch import scratch_dir

    dead = subprocess.Popen(["true"])
    dead.wait()
    root = Path(scratch.root)
    root.mkdir()
    leftover = root / f"{PREFIX}{dead.pid}-1-abcd"
    (leftover / "data").mkdir(parents=True)
    (leftover / "data" / "ro").write_text("x")
    os.chmod(leftover / "data", 0o500)
    with scratch_dir(scratch) as mine:
        removed = sweep(scratch.root)
        assert mine.exists()
    assert removed == [leftover.name]
    assert left_in(scratch) == []


@pytest.mark.parametrize("options", [
    {"block_size": 7, "content_checksum": True, "store_size": False, "block_linked": False},
    {},  # python-lz4's defaults: 64 KiB linked blocks and a content size
    {"block_size": 7, "block_checksum": True, "store_size": True},
], ids=["go-writer", "many-blocks", "block-checksum"])
def test_every_lz4_frame_shape_decodes(options: dict[str, object]) -> None:
    import lz4.frame

    block = os.urandom(MiB) + bytes(MiB)
    if options.get("block_size") == 7:
        options = {**options, "block_size": lz4.frame.BLOCKSIZE_MAX4MB}

    assert lv._decompress(lv.Compression.LZ4, lz4.frame.compress(block, **options)) == block
