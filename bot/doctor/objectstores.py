"""Object stores: each configured store can be listed and read with drbot's credentials, and the
one drbot writes to (the etcd store: `/dr etcd-sync` uploads snapshots and prunes old copies) lets
it write. The write check writes nothing (a conditional PutObject, see ObjectStore.may_write)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from adapters.errors import Denied
from adapters.progress import one_line
from bot.doctor.result import Line, System, fail, guarded, ok, skip

if TYPE_CHECKING:
    from adapters.s3 import StoreConfig
    from bot.config.inventory import Inventory
    from bot.worker.services import Services

STORE = System.STORE
KINDS = ("longhorn", "cnpg", "etcd")
WRITTEN = ("etcd",)  # where drbot writes
LIMIT = 400  # characters of an error on a red line, as result.guarded keeps
FIX = ("check the store's url, endpoint_url, ca_file and the credentials file (access_key, "
       "secret_key) in the inventory's backups section")


def grant(config: StoreConfig, action: str, objects: bool) -> str:
    """The permission to grant, in AWS IAM's words (S3-compatible services that take bucket
    policies — MinIO, Garage, Ceph RGW — name the same actions)."""
    resource = f"arn:aws:s3:::{config.bucket}" + (f"/{config.base}*" if objects else "")
    return (f"grant the store's key {action} on {resource} (its IAM or bucket policy), or use "
            "a key that has it")


def check_store(services: Services, inventory: Inventory, kind: str) -> list[Line]:
    entry = getattr(inventory.backups, f"{kind}_store")
    subject = f"{kind}_store"
    if entry is None:
        return [skip(STORE, subject, "not configured")]

    def run() -> list[Line]:
        store = services.store(kind)
        try:
            first = next(iter(store.list()), None)
        except Denied as exc:  # AWS: ListObjectsV2 needs s3:ListBucket on the bucket
            return [fail(STORE, subject, one_line(exc, LIMIT),
                         grant(store.config, "s3:ListBucket", objects=False))]
        if first is None:
            return [ok(STORE, subject, f"{store.location} lists (empty: nothing to read yet)")]
        try:
            store.read(first.key)
        except Denied as exc:  # a restore reads every object it needs: s3:GetObject
            return [fail(STORE, subject, one_line(exc, LIMIT),
                         grant(store.config, "s3:GetObject", objects=True))]
        lines = [ok(STORE, subject, f"{store.location} lists and reads ({first.key})")]
        if kind in WRITTEN:
            try:
                may = store.may_write(first.key)
            except Denied as exc:  # /dr etcd-sync uploads: s3:PutObject
                return [*lines, fail(STORE, f"{subject} write", one_line(exc, LIMIT),
                                     grant(store.config, "s3:PutObject", objects=True))]
            if may:
                lines.append(ok(STORE, f"{subject} write", "drbot may write (nothing written)"))
            else:
                lines.append(fail(STORE, f"{subject} write", "the store ignores conditional "
                                  f"writes: {first.key} was rewritten with its own content",
                                  "use an S3 service that honours If-None-Match"))
        return lines

    return guarded(STORE, subject, FIX, run)


def check(services: Services, inventory: Inventory) -> list[Line]:
    return [line for kind in KINDS for line in check_store(services, inventory, kind)]
