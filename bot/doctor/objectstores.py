"""Object stores: each configured store can be listed and read with drbot's credentials, and the
one drbot writes to (the etcd store: `/dr etcd-sync` uploads snapshots and prunes old copies) lets
it write. The write check writes nothing (a conditional PutObject, see ObjectStore.may_write)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.doctor.result import Line, System, fail, guarded, ok, skip

if TYPE_CHECKING:
    from bot.config.inventory import Inventory
    from bot.worker.services import Services

STORE = System.STORE
KINDS = ("longhorn", "cnpg", "etcd")
WRITTEN = ("etcd",)  # where drbot writes
FIX = ("check the store's url, endpoint_url, ca_file and the credentials file (access_key, "
       "secret_key) in the inventory's backups section")


def check_store(services: Services, inventory: Inventory, kind: str) -> list[Line]:
    entry = getattr(inventory.backups, f"{kind}_store")
    subject = f"{kind}_store"
    if entry is None:
        return [skip(STORE, subject, "not configured")]

    def run() -> list[Line]:
        store = services.store(kind)
        first = next(iter(store.list()), None)
        if first is None:
            return [ok(STORE, subject, f"{store.location} lists (empty: nothing to read yet)")]
        store.read(first.key)
        lines = [ok(STORE, subject, f"{store.location} lists and reads ({first.key})")]
        if kind in WRITTEN:
            if store.may_write(first.key):
                lines.append(ok(STORE, f"{subject} write", "drbot may write (nothing written)"))
            else:
                lines.append(fail(STORE, f"{subject} write", "the store ignores conditional "
                                  f"writes: {first.key} was rewritten with its own content",
                                  "use an S3 service that honours If-None-Match"))
        return lines

    return guarded(STORE, subject, FIX, run)


def check(services: Services, inventory: Inventory) -> list[Line]:
    return [line for kind in KINDS for line in check_store(services, inventory, kind)]
