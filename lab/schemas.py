"""Schemas of the fields drbot relies on in the custom resources it reads and writes, written
from the upstream CRD definitions (not copied from them), so the lab's objects and drbot's writes
can be checked against what the real API server would hold.

Sources: longhorn/longhorn-manager ``k8s/pkg/apis/longhorn/v1beta2`` (volume.go, backup.go,
backupvolume.go, backuptarget.go, snapshot.go, node.go, replica.go, engine.go), cloudnative-pg
``api/v1`` (cluster_types.go, backup_types.go, scheduledbackup_types.go) and
cloudnative-pg/plugin-barman-cloud ``api/v1/objectstore_types.go``, k3s
``pkg/apis/k3s.cattle.io/v1/types.go`` (ETCDSnapshotFile). Flux's kinds are checked with the
generated models of ``cloudcoil-models-fluxcd`` instead (see ``validate``).

Only fields drbot reads or writes are described; others are allowed. An empty string is allowed
wherever Longhorn leaves a field unset that way.
"""

from __future__ import annotations

from typing import Any

STRING = {"type": "string"}
BOOL = {"type": "boolean"}
INT = {"type": "integer"}
DIGITS = {"type": "string", "pattern": r"^[0-9]*$"}  # Go int64 fields written `,string`
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
TIME = {"type": "string", "pattern": r"^$|^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"}
CONDITIONS = {"type": "array", "items": {"type": "object", "required": ["type", "status"],
                                         "properties": {"type": STRING, "status": {
                                             "enum": ["True", "False", "Unknown"]},
                                             "reason": STRING, "message": STRING}}}
META = {"type": "object", "required": ["name"],
        "properties": {"name": STRING, "namespace": STRING, "labels": LABELS,
                       "annotations": LABELS, "finalizers": {"type": "array", "items": STRING}}}


def kind(api_version: str, name: str, spec: dict[str, Any], status: dict[str, Any],
         required_spec: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "apiVersion": {"const": api_version}, "kind": {"const": name}, "metadata": META,
            "spec": {"type": "object", "properties": spec, "required": list(required_spec)},
            "status": {"type": "object", "properties": status},
        },
    }


LH = "longhorn.io/v1beta2"
ACCESS_MODE = {"enum": ["rwo", "rwop", "rwx"]}
KUBERNETES_STATUS = {"type": "object", "properties": {
    "pvName": STRING, "pvStatus": STRING, "namespace": STRING, "pvcName": STRING,
    "lastPVCRefAt": STRING, "lastPodRefAt": STRING,
    "workloadsStatus": {"type": ["array", "null"]}}}

SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    (LH, "Volume"): kind(LH, "Volume", {
        "size": DIGITS, "numberOfReplicas": INT, "accessMode": ACCESS_MODE,
        "fromBackup": STRING, "frontend": {"enum": ["blockdev", "iscsi", "nvmf", "ublk", ""]},
        "backupTargetName": STRING, "staleReplicaTimeout": INT,
    }, {
        "state": {"enum": ["creating", "attached", "detached", "attaching", "detaching",
                           "deleting", ""]},
        "robustness": {"enum": ["healthy", "degraded", "faulted", "unknown", ""]},
        "currentNodeID": STRING, "kubernetesStatus": KUBERNETES_STATUS,
        "restoreRequired": BOOL, "restoreInitiated": BOOL, "lastBackup": STRING,
        "lastBackupAt": TIME, "conditions": CONDITIONS,
    }),
    (LH, "Backup"): kind(LH, "Backup", {
        "snapshotName": STRING, "labels": LABELS, "backupTargetName": STRING,
        "backupMode": {"enum": ["full", "incremental", ""]},
    }, {
        "state": {"enum": ["", "Pending", "InProgress", "Completed", "Error", "Unknown",
                           "Deleting"]},
        "url": STRING, "volumeName": STRING, "volumeSize": DIGITS, "size": DIGITS,
        "labels": LABELS, "backupCreatedAt": TIME, "snapshotCreatedAt": TIME,
        "backupTargetName": STRING, "error": STRING, "lastSyncedAt": TIME, "progress": INT,
    }),
    (LH, "BackupVolume"): kind(LH, "BackupVolume", {
        "volumeName": STRING, "backupTargetName": STRING, "syncRequestedAt": TIME,
    }, {
        "lastBackupName": STRING, "lastBackupAt": TIME, "lastSyncedAt": TIME,
        "storageClassName": STRING, "size": DIGITS, "labels": LABELS,
    }),
    (LH, "BackupTarget"): kind(LH, "BackupTarget", {
        "backupTargetURL": STRING, "credentialSecret": STRING,
        "pollInterval": {"type": "string", "pattern": r"^([0-9.]+(h|m|s|ms))+$"},
        "syncRequestedAt": TIME,
    }, {"available": BOOL, "lastSyncedAt": TIME, "conditions": CONDITIONS}),
    (LH, "Snapshot"): kind(LH, "Snapshot", {
        "volume": STRING, "createSnapshot": BOOL, "labels": {"type": ["object", "null"]},
    }, {"readyToUse": BOOL, "error": STRING, "creationTime": STRING},
        required_spec=("volume",)),
    (LH, "Node"): kind(LH, "Node", {
        "allowScheduling": BOOL, "evictionRequested": BOOL, "disks": {"type": "object"},
    }, {"conditions": CONDITIONS}),
    (LH, "Replica"): kind(LH, "Replica", {
        "nodeID": STRING, "volumeName": STRING, "healthyAt": TIME, "failedAt": TIME,
    }, {"currentState": {"enum": ["", "stopped", "starting", "running", "stopping", "error",
                                  "unknown"]}}),
    (LH, "Engine"): kind(LH, "Engine", {"volumeName": STRING, "nodeID": STRING}, {
        "currentState": STRING,
        "restoreStatus": {"type": ["object", "null"], "additionalProperties": {
            "type": ["object", "null"], "properties": {
                "isRestoring": BOOL, "progress": INT, "state": STRING, "error": STRING,
                "backupURL": STRING}}},
        "rebuildStatus": {"type": ["object", "null"], "additionalProperties": {
            "type": ["object", "null"], "properties": {
                "isRebuilding": BOOL, "progress": INT, "state": STRING, "error": STRING,
                "fromReplicaAddress": STRING,
                "fromReplicaAddressList": {"type": "array", "items": STRING}}}},
    }),
}

CNPG = "postgresql.cnpg.io/v1"
BARMAN_STORE = {"type": "object", "properties": {"destinationPath": STRING,
                                                 "serverName": STRING}}
SCHEMAS.update({
    (CNPG, "Cluster"): kind(CNPG, "Cluster", {
        "instances": INT, "backup": {"type": "object",
                                     "properties": {"barmanObjectStore": BARMAN_STORE}},
        "plugins": {"type": "array", "items": {"type": "object", "required": ["name"],
                                               "properties": {"name": STRING,
                                                              "parameters": LABELS}}},
    }, {"phase": STRING, "conditions": CONDITIONS, "lastSuccessfulBackup": TIME,
        "firstRecoverabilityPoint": TIME}),
    (CNPG, "Backup"): kind(CNPG, "Backup", {
        "cluster": {"type": "object", "required": ["name"], "properties": {"name": STRING}},
        "method": {"enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
    }, {"phase": STRING, "backupId": STRING, "startedAt": TIME, "stoppedAt": TIME,
        "error": STRING, "method": {"enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
        "backupName": STRING, "serverName": STRING, "destinationPath": STRING,
        "beginWal": STRING, "endWal": STRING, "beginLSN": STRING, "endLSN": STRING,
        "instanceID": {"type": "object", "properties": {"podName": STRING}}},
        required_spec=("cluster",)),
    (CNPG, "ScheduledBackup"): kind(CNPG, "ScheduledBackup", {
        "schedule": STRING, "suspend": BOOL,
        "cluster": {"type": "object", "required": ["name"], "properties": {"name": STRING}},
    }, {"lastScheduleTime": TIME, "nextScheduleTime": TIME},
        required_spec=("schedule", "cluster")),
    ("barmancloud.cnpg.io/v1", "ObjectStore"): kind("barmancloud.cnpg.io/v1", "ObjectStore", {
        "configuration": {"type": "object", "required": ["destinationPath"],
                          "properties": {"destinationPath": STRING}},
    }, {"serverRecoveryWindow": {"type": "object"}}, required_spec=("configuration",)),
    ("k3s.cattle.io/v1", "ETCDSnapshotFile"): kind("k3s.cattle.io/v1", "ETCDSnapshotFile", {
        "snapshotName": STRING, "nodeName": STRING, "location": STRING,
        "s3": {"type": "object"},
    }, {"readyToUse": BOOL, "creationTime": TIME, "size": STRING,
        "error": {"type": "object", "properties": {"time": TIME, "message": STRING}}},
        required_spec=("snapshotName", "nodeName", "location")),
})

FLUX_MODELS = {
    ("kustomize.toolkit.fluxcd.io/v1", "Kustomization"):
        "cloudcoil.models.fluxcd.kustomize.v1:Kustomization",
    ("helm.toolkit.fluxcd.io/v2", "HelmRelease"): "cloudcoil.models.fluxcd.helm.v2:HelmRelease",
    ("source.toolkit.fluxcd.io/v1", "GitRepository"):
        "cloudcoil.models.fluxcd.source.v1:GitRepository",
}


def checked(obj: dict[str, Any]) -> bool:
    """Whether ``obj`` is of a kind this module describes."""
    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    return key in SCHEMAS or key in FLUX_MODELS


def problems(obj: dict[str, Any]) -> list[str]:
    """What in ``obj`` the real API server's schema (as far as drbot relies on it) refuses."""
    import importlib

    import jsonschema

    key = (obj.get("apiVersion", ""), obj.get("kind", ""))
    where = f"{key[1]} {obj.get('metadata', {}).get('namespace', '')}/" \
            f"{obj.get('metadata', {}).get('name', '')}"
    if key in FLUX_MODELS:
        module, _, name = FLUX_MODELS[key].partition(":")
        model = getattr(importlib.import_module(module), name)
        try:
            model.model_validate(obj)
        except Exception as exc:  # noqa: BLE001 (pydantic's ValidationError, reported as text)
            return [f"{where}: {line}" for line in str(exc).splitlines()[1:3]]
        return []
    schema = SCHEMAS.get(key)
    if schema is None:
        return []
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(obj)]
