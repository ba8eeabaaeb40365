"""The CNPG drill without a worker: the recovery Cluster it asks for (never a backup or plugins
section; through the inventory's read-only ObjectStore, the source's plugin store or its in-tree
store), the exec API's status, and what an SQL check's output means."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from adapters.errors import AdapterError
from adapters.kubernetes import cnpg_drill
from adapters.kubernetes import resources as R
from adapters.kubernetes.client import Kube
from bot.config.inventory import Inventory, SqlCheck
from bot.errors import CommandError
from handlers import drill_cnpg
from lab.fakes.kube import StandaloneKube, add_cnpg_cluster

IN_TREE = {
    "destinationPath": "s3://pg-backups/prod",
    "endpointURL": "https://s3.example.net",
    "endpointCA": {"name": "s3-ca", "key": "ca.crt"},
    "s3Credentials": {"accessKeyId": {"name": "pg-s3", "key": "ACCESS_KEY_ID"},
                      "secretAccessKey": {"name": "pg-s3", "key": "ACCESS_SECRET_KEY"}},
    "wal": {"compression": "gzip"},
    "data": {"compression": "gzip"},
    "serverName": "pg-main-v2",
}


def source(spec: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"name": "pg-main", "namespace": "databases"}, "spec": spec}


def test_an_in_tree_store_recovers_its_server_and_archives_nowhere() -> None:
    src = source({"instances": 3, "imageName": "pg:16", "storage": {"size": "8Gi"},
                  "backup": {"barmanObjectStore": IN_TREE, "retentionPolicy": "7d"},
                  "plugins": [{"name": "other-plugin"}]})
    plan = cnpg_drill.plan(src, name="drill", namespace="drbot-drill-j1",
                           server_name="pg-main-v2", object_store=None, has_ca=True)
    spec = plan.cluster["spec"]
    assert "backup" not in spec and "plugins" not in spec
    assert spec["instances"] == 1 and spec["imageName"] == "pg:16"
    assert spec["bootstrap"] == {"recovery": {"source": cnpg_drill.SOURCE}}
    (external,) = spec["externalClusters"]
    assert external["name"] == cnpg_drill.SOURCE
    store = external["barmanObjectStore"]
    assert store["serverName"] == "pg-main-v2" and store["destinationPath"] == "s3://pg-backups/prod"
    assert "wal" not in store and "data" not in store  # the archiving options stay behind
    # drbot's own read-only key, in the drill namespace's Secret; the source's is never named
    assert store["s3Credentials"] == {
        "accessKeyId": {"name": "drbot-drill-store", "key": "ACCESS_KEY_ID"},
        "secretAccessKey": {"name": "drbot-drill-store", "key": "ACCESS_SECRET_KEY"},
        "region": {"name": "drbot-drill-store", "key": "REGION"}}
    assert store["endpointCA"] == {"name": "drbot-drill-store", "key": "ca.crt"}
    assert plan.object_store is None
    assert plan.storage == (8 << 30, "")
    assert src["spec"]["backup"]["barmanObjectStore"]["wal"]  # type: ignore[index]
    with pytest.raises(AdapterError, match="set backups.cnpg_store.ca_file"):
        cnpg_drill.plan(src, name="drill", namespace="drbot-drill-j1", server_name="pg-main-v2",
                        object_store=None)  # an endpoint CA drbot cannot give
    azure = source({"backup": {"barmanObjectStore": {
        "destinationPath": "https://acct.blob.core.windows.net/pg",
        "azureCredentials": {"storageAccount": {"name": "az", "key": "account"}}}}})
    with pytest.raises(AdapterError, match="only S3 object stores"):
        cnpg_drill.plan(azure, name="drill", namespace="n", server_name="pg", object_store=None)


def test_an_object_store_is_copied_without_its_retention_policy() -> None:
    store = {"metadata": {"name": "pg-readonly", "namespace": "databases"},
             "spec": {"configuration": {"destinationPath": "s3://pg-backups/prod",
                                        "s3Credentials": {"accessKeyId": {
                                            "name": "pg-s3-ro", "key": "id"}}},
                      "retentionPolicy": "30d"}}
    plan = cnpg_drill.plan(source({"instances": 2}), name="drill", namespace="drbot-drill-j2",
                           server_name="pg-main", object_store=store)
    spec = plan.cluster["spec"]
    assert "backup" not in spec and "plugins" not in spec
    assert spec["externalClusters"] == [{"name": cnpg_drill.SOURCE, "plugin": {
        "name": "barman-cloud.cloudnative-pg.io",
        "parameters": {"barmanObjectName": "pg-readonly", "serverName": "pg-main"}}}]
    assert plan.object_store is not None
    assert plan.object_store["metadata"] == {"name": "pg-readonly", "namespace": "drbot-drill-j2"}
    assert "retentionPolicy" not in plan.object_store["spec"]
    assert plan.object_store["spec"]["configuration"]["s3Credentials"]["accessKeyId"] == {
        "name": "drbot-drill-store", "key": "ACCESS_KEY_ID"}
    assert plan.store == "ObjectStore pg-readonly"


def test_a_source_without_a_store_is_refused() -> None:
    with pytest.raises(AdapterError, match="no object store to recover from"):
        cnpg_drill.plan(source({"instances": 1}), name="drill", namespace="drbot-drill-j3",
                        server_name="pg-main", object_store=None)


def test_the_inventory_store_wins_over_the_plugin_store(kube_emulator: StandaloneKube,
                                                        kube: Kube) -> None:
    add_cnpg_cluster(kube_emulator, "pg-main", "databases", plugin_store="pg-archive")
    for name in ("pg-archive", "pg-readonly"):
        kube_emulator.create(cnpg_drill.BARMAN_OBJECTSTORES, {
            "metadata": {"name": name, "namespace": "databases"},
            "spec": {"configuration": {"destinationPath": f"s3://{name}/"}}})
    inventory = Inventory()
    plan = drill_cnpg.recovery_for(kube, inventory, "databases/pg-main", "drbot-drill-j4")
    assert plan.store == "ObjectStore pg-archive"  # the source's own plugin store
    inventory.backups.drill.cnpg_object_stores["databases/pg-main"] = "pg-readonly"
    plan = drill_cnpg.recovery_for(kube, inventory, "databases/pg-main", "drbot-drill-j4")
    assert plan.store == "ObjectStore pg-readonly"
    assert "plugins" not in plan.cluster["spec"]
    kube_emulator.create(R.NAMESPACES, {"metadata": {"name": "drbot-drill-j4"}})
    cnpg_drill.create(kube, plan, {"ACCESS_KEY_ID": b"ro-key", "ACCESS_SECRET_KEY": b"ro"})
    cnpg_drill.create(kube, plan, {"ACCESS_KEY_ID": b"ro-key", "ACCESS_SECRET_KEY": b"ro"})
    made = kube_emulator.get(R.BARMAN_OBJECTSTORES, "pg-readonly", "drbot-drill-j4")
    assert made is not None and "retentionPolicy" not in made["spec"]
    cluster = kube_emulator.get(R.CNPG_CLUSTERS, "drill", "drbot-drill-j4")
    assert cluster is not None and "plugins" not in cluster["spec"]
    assert kube_emulator.get(R.SECRETS, "drbot-drill-store", "drbot-drill-j4") is not None
    inventory.backups.drill.cnpg_object_stores["databases/pg-main"] = "missing"
    with pytest.raises(CommandError, match="ObjectStore databases/missing does not exist"):
        drill_cnpg.recovery_for(kube, inventory, "databases/pg-main", "drbot-drill-j4")
    with pytest.raises(CommandError, match="give the cluster with its namespace"):
        drill_cnpg.split("pg-main")


def test_the_exec_status_gives_the_exit_code_or_the_apis_reason() -> None:
    assert cnpg_drill.exit_code(json.dumps({"metadata": {}, "status": "Success"}), "p") == 0
    failure = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
               "message": "command terminated with non-zero exit code: exit status 3",
               "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}
    assert cnpg_drill.exit_code(json.dumps(failure), "p") == 3
    internal = {"status": "Failure", "reason": "InternalError",
                "message": 'failed to exec in container: "psql" not found'}
    with pytest.raises(AdapterError, match='"psql" not found'):
        cnpg_drill.exit_code(json.dumps(internal), "p")
    with pytest.raises(AdapterError, match="without a status"):
        cnpg_drill.exit_code("", "p")


def test_a_sql_check_says_expected_and_got_and_measures_the_newest_data() -> None:
    now = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    count = SqlCheck(name="orders", query="SELECT count(*) FROM orders", expect="1200")
    assert drill_cnpg.evaluate(count, 0, "1200\n", "", now)[0].ok
    wrong, _ = drill_cnpg.evaluate(count, 0, "1000\n", "", now)
    assert not wrong.ok and wrong.text == "expected '1200', got '1000'"
    failed, _ = drill_cnpg.evaluate(count, 1, "", 'ERROR:  relation "orders" does not exist\n',
                                    now)
    assert not failed.ok
    assert failed.text == 'the query failed (exit 1): ERROR:  relation "orders" does not exist'
    newest = SqlCheck(name="newest", query="SELECT max(at) FROM t", max_age_hours=2)
    edge = now - timedelta(hours=2)
    found, when = drill_cnpg.evaluate(newest, 0, f"{edge:%Y-%m-%d %H:%M:%S}+00\n", "", now)
    assert found.ok and when == edge  # exactly max_age_hours old is still fresh
    late, when = drill_cnpg.evaluate(newest, 0, "2026-12-05 00:59:59.5+00\n", "", now)
    assert not late.ok and "over 2h" in late.text and when is not None
    assert not drill_cnpg.evaluate(newest, 0, "soon\n", "", now)[0].ok
    assert drill_cnpg.parse_time("2026-12-05 01:02:03+01") == datetime(2026, 12, 5, 0, 2, 3,
                                                                        tzinfo=UTC)


def test_checks_default_to_the_verifications_then_select_1() -> None:
    inventory = Inventory()
    assert [c.query for c in drill_cnpg.checks_for(inventory, "db/pg", "pg")] == ["SELECT 1"]
    inventory.backups.verify.cnpg_checks["pg"] = [SqlCheck(name="v", query="SELECT 2")]
    assert [c.name for c in drill_cnpg.checks_for(inventory, "db/pg", "pg")] == ["v"]
    inventory.backups.drill.cnpg_checks["db/pg"] = [SqlCheck(name="d", query="SELECT 3")]
    assert [c.name for c in drill_cnpg.checks_for(inventory, "db/pg", "pg")] == ["d"]
    assert cnpg_drill.quantity("1.5Gi") == 3 << 29 and cnpg_drill.quantity("lots") == 0
