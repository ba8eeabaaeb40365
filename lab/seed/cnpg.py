"""The CloudNativePG part of the seed: for every cluster of `lab.world.PG_CLUSTERS` its
Cluster (pg-auth's WAL archiving failing), its daily ScheduledBackup and its completed Backups.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any

from lab.world import BUCKETS, CNPG_NS, PG_CLUSTERS, barman_backup_id, ts, wal_name

WAL_FAILURE = (
    "unexpected failure invoking barman-cloud-wal-archive: exit status 4: "
    "ERROR: Barman cloud WAL archiver exception: An error occurred (AccessDenied) "
    "when calling the PutObject operation: Access Denied"
)


def store_secret() -> dict[str, Any]:
    """The Secret the clusters' barmanObjectStore names (``cnpg-s3``). Its values are
    placeholders: the lab's operator reads the bucket with the lab's own key."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "cnpg-s3", "namespace": CNPG_NS},
        "data": {"ACCESS_KEY_ID": base64.b64encode(b"drbot-lab").decode(),
                 "ACCESS_SECRET_KEY": base64.b64encode(b"lab-placeholder").decode()},
    }


def cnpg_objects(now: datetime) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [store_secret()]
    for pg in PG_CLUSTERS:
        times = [now - timedelta(days=age) for age in pg.backup_age_days]
        last = max(times)
        archiving = (
            {
                "type": "ContinuousArchiving",
                "status": "True",
                "reason": "ContinuousArchivingSuccess",
                "message": "Continuous archiving is working",
                "lastTransitionTime": ts(now - timedelta(days=10)),
            }
            if pg.archiving_ok
            else {
                "type": "ContinuousArchiving",
                "status": "False",
                "reason": "ContinuousArchivingFailing",
                "message": WAL_FAILURE,
                "lastTransitionTime": ts(now - timedelta(hours=pg.last_wal_age_hours)),
            }
        )
        objs.append(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "Cluster",
                "metadata": {"name": pg.name, "namespace": CNPG_NS, "generation": 1},
                "spec": {
                    "instances": 1,
                    "imageName": "ghcr.io/cloudnative-pg/postgresql:16.4",
                    "storage": {"size": "8Gi", "storageClass": "longhorn"},
                    "backup": {
                        "retentionPolicy": "7d",
                        "barmanObjectStore": {
                            "destinationPath": f"s3://{BUCKETS['cnpg']}/",
                            "endpointURL": "http://s3.lab.invalid",
                            "s3Credentials": {
                                "accessKeyId": {"name": "cnpg-s3", "key": "ACCESS_KEY_ID"},
                                "secretAccessKey": {"name": "cnpg-s3", "key": "ACCESS_SECRET_KEY"},
                            },
                            "wal": {"compression": "gzip"},
                        },
                    },
                },
                "status": {
                    "phase": "Cluster in healthy state",
                    "instances": 1,
                    "readyInstances": 1,
                    "currentPrimary": f"{pg.name}-1",
                    "latestGeneratedNode": 1,
                    "firstRecoverabilityPoint": ts(min(times)),
                    "lastSuccessfulBackup": ts(last),
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "ClusterIsReady",
                            "message": "Cluster is Ready",
                            "lastTransitionTime": ts(now),
                        },
                        archiving,
                        {
                            "type": "LastBackupSucceeded",
                            "status": "True",
                            "reason": "LastBackupSucceeded",
                            "message": "",
                            "lastTransitionTime": ts(last),
                        },
                    ],
                },
            }
        )
        objs.append(
            {
                "apiVersion": "postgresql.cnpg.io/v1",
                "kind": "ScheduledBackup",
                "metadata": {"name": f"{pg.name}-daily", "namespace": CNPG_NS},
                "spec": {
                    "schedule": "0 0 1 * * *",
                    "cluster": {"name": pg.name},
                    "method": "barmanObjectStore",
                    "backupOwnerReference": "self",
                },
                "status": {
                    "lastCheckTime": ts(now),
                    "lastScheduleTime": ts(last),
                    "nextScheduleTime": ts(last + timedelta(days=1)),
                },
            }
        )
        for when in times:
            backup_id = barman_backup_id(when)
            objs.append(
                {
                    "apiVersion": "postgresql.cnpg.io/v1",
                    "kind": "Backup",
                    "metadata": {
                        "name": f"{pg.name}-daily-{backup_id.lower()}",
                        "namespace": CNPG_NS,
                    },
                    "spec": {"cluster": {"name": pg.name}, "method": "barmanObjectStore"},
                    "status": {
                        "phase": "completed",
                        "method": "barmanObjectStore",
                        "backupId": backup_id,
                        "backupName": f"backup-{backup_id}",
                        "serverName": pg.name,
                        "destinationPath": f"s3://{BUCKETS['cnpg']}/",
                        "startedAt": ts(when),
                        "stoppedAt": ts(when + timedelta(minutes=3)),
                        "beginWal": wal_name(when, 0),
                        "endWal": wal_name(when, 1),
                    },
                }
            )
    return objs
