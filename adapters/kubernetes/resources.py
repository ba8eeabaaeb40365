"""The API resources drbot reads and writes, named once (group, version, plural, kind, scope)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    """One API resource; ``group`` is empty for the core API."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


LONGHORN_NAMESPACE = "longhorn-system"

# Flux
KUSTOMIZATIONS = Resource("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization")
HELMRELEASES = Resource("helm.toolkit.fluxcd.io", "v2", "helmreleases", "HelmRelease")
GITREPOSITORIES = Resource("source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository")
OCIREPOSITORIES = Resource("source.toolkit.fluxcd.io", "v1", "ocirepositories", "OCIRepository")
BUCKETS = Resource("source.toolkit.fluxcd.io", "v1", "buckets", "Bucket")
HELMCHARTS = Resource("source.toolkit.fluxcd.io", "v1", "helmcharts", "HelmChart")
HELMREPOSITORIES = Resource("source.toolkit.fluxcd.io", "v1", "helmrepositories", "HelmRepository")

# Longhorn
LH_VOLUMES = Resource("longhorn.io", "v1beta2", "volumes", "Volume")
LH_REPLICAS = Resource("longhorn.io", "v1beta2", "replicas", "Replica")
LH_ENGINES = Resource("longhorn.io", "v1beta2", "engines", "Engine")
LH_NODES = Resource("longhorn.io", "v1beta2", "nodes", "Node")
LH_BACKUPS = Resource("longhorn.io", "v1beta2", "backups", "Backup")
LH_BACKUPVOLUMES = Resource("longhorn.io", "v1beta2", "backupvolumes", "BackupVolume")
LH_BACKUPTARGETS = Resource("longhorn.io", "v1beta2", "backuptargets", "BackupTarget")
LH_SNAPSHOTS = Resource("longhorn.io", "v1beta2", "snapshots", "Snapshot")
LH_RECURRINGJOBS = Resource("longhorn.io", "v1beta2", "recurringjobs", "RecurringJob")
LH_SETTINGS = Resource("longhorn.io", "v1beta2", "settings", "Setting")

# CloudNativePG and the Barman Cloud plugin
CNPG_CLUSTERS = Resource("postgresql.cnpg.io", "v1", "clusters", "Cluster")
CNPG_BACKUPS = Resource("postgresql.cnpg.io", "v1", "backups", "Backup")
CNPG_SCHEDULEDBACKUPS = Resource("postgresql.cnpg.io", "v1", "scheduledbackups", "ScheduledBackup")
BARMAN_OBJECTSTORES = Resource("barmancloud.cnpg.io", "v1", "objectstores", "ObjectStore")

# K3s
ETCD_SNAPSHOT_FILES = Resource(
    "k3s.cattle.io", "v1", "etcdsnapshotfiles", "ETCDSnapshotFile", namespaced=False
)

# Core resources the adapter touches (listed so test servers can register them too).
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
PODS = Resource("", "v1", "pods", "Pod")
PERSISTENTVOLUMES = Resource("", "v1", "persistentvolumes", "PersistentVolume", namespaced=False)
PERSISTENTVOLUMECLAIMS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PODDISRUPTIONBUDGETS = Resource("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
SECRETS = Resource("", "v1", "secrets", "Secret")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")

CUSTOM: tuple[Resource, ...] = (
    KUSTOMIZATIONS, HELMRELEASES, GITREPOSITORIES, OCIREPOSITORIES, BUCKETS, HELMCHARTS,
    HELMREPOSITORIES, LH_VOLUMES, LH_REPLICAS, LH_ENGINES, LH_NODES, LH_BACKUPS,
    LH_BACKUPVOLUMES, LH_BACKUPTARGETS, LH_SNAPSHOTS, LH_RECURRINGJOBS, LH_SETTINGS, CNPG_CLUSTERS,
    CNPG_BACKUPS, CNPG_SCHEDULEDBACKUPS, BARMAN_OBJECTSTORES, ETCD_SNAPSHOT_FILES,
)
CORE: tuple[Resource, ...] = (
    NODES, PODS, PERSISTENTVOLUMES, PERSISTENTVOLUMECLAIMS, PODDISRUPTIONBUDGETS, NAMESPACES,
    SECRETS, DEPLOYMENTS, STATEFULSETS,
)
