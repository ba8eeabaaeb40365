"""The watch's gauges on the bot's /metrics, read from the latest findings in Redis on each scrape.

The check runs in a short-lived work horse, so gauges set there would die with it; the bot
instead reads what the last check stored. The names and help texts are those of bot.metrics
(`drbot_backup_age_seconds`, `drbot_backup_ok`); this collector takes their place in the registry.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator

import redis
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from bot.metrics import BACKUP_AGE, BACKUP_STATE
from bot.watch import drilled, verified
from bot.watch.alert_states import FINDINGS, LAST

log = logging.getLogger("drbot.watch")


class FindingsCollector:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def describe(self) -> list[Metric]:
        return []  # collected only on scrape: never called at registration

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily(BACKUP_AGE._name, BACKUP_AGE._documentation,
                                labels=["kind", "name"])
        ok = GaugeMetricFamily(BACKUP_STATE._name, BACKUP_STATE._documentation,
                               labels=["kind", "name"])
        last = GaugeMetricFamily("drbot_backup_check_timestamp_seconds",
                                 "When the latest backup check ran (Unix time)")
        blind = GaugeMetricFamily("drbot_backup_watch_blind",
                                  "1 when the latest check could not read this side",
                                  labels=["side"])
        verified_age = GaugeMetricFamily(
            "drbot_backup_verified_age_seconds",
            "Seconds since a backup of the object was last verified restorable", labels=["kind", "name"])
        verify_ok = GaugeMetricFamily(
            "drbot_backup_verify_ok", "1 when the object's latest verification passed, else 0",
            labels=["kind", "name"])
        drilled_age = GaugeMetricFamily(
            "drbot_backup_drilled_age_seconds",
            "Seconds since a backup of the object last passed a restore drill in the cluster",
            labels=["kind", "name"])
        drill_ok = GaugeMetricFamily(
            "drbot_backup_drill_ok", "1 when the object's latest restore drill passed, else 0",
            labels=["kind", "name"])
        drill_restore = GaugeMetricFamily(
            "drbot_backup_drill_restore_seconds",
            "How long the latest restore drill's restore took (an RTO sample)",
            labels=["kind", "name"])
        try:
            findings = self.client.hvals(FINDINGS)
            raw_last = self.client.get(LAST)
            records = verified.load(self.client)
            drills = drilled.load(self.client)
        except redis.RedisError as exc:
            log.warning("backup metrics: redis unavailable (%s)", exc)
            return
        for raw in findings:
            f = json.loads(raw)
            if f.get("last_good_at") is not None:  # as of now, not of the check
                age.add_metric([f["kind"], f["label"]], max(0.0, time.time() - f["last_good_at"]))
            ok.add_metric([f["kind"], f["label"]], 1.0 if f["status"] == "ok" else 0.0)
        if raw_last:
            data = json.loads(raw_last)
            last.add_metric([], float(data["at"]))
            for side, sight in data.get("sights", {}).items():
                if sight.get("configured", True):
                    blind.add_metric([side], 0.0 if sight.get("ok") else 1.0)
        for rec in records.values():
            if rec.last_ok_at is not None:
                verified_age.add_metric([rec.kind, rec.name], max(0.0, time.time() - rec.last_ok_at))
            verify_ok.add_metric([rec.kind, rec.name], 1.0 if rec.ok else 0.0)
        for drill in drills.values():
            labels = [drill.kind, drill.name]
            if drill.last_ok_at is not None:
                drilled_age.add_metric(labels, max(0.0, time.time() - drill.last_ok_at))
            drill_ok.add_metric(labels, 1.0 if drill.ok else 0.0)
            if drill.restore_seconds is not None:
                drill_restore.add_metric(labels, float(drill.restore_seconds))
        yield from (age, ok, last, blind, verified_age, verify_ok, drilled_age, drill_ok,
                    drill_restore)


def install(client: redis.Redis, registry: CollectorRegistry = REGISTRY) -> FindingsCollector:
    """Put the collector in place of the process-local gauges (idempotent)."""
    for metric in (BACKUP_AGE, BACKUP_STATE):
        with contextlib.suppress(KeyError):
            registry.unregister(metric)
    for existing in list(getattr(registry, "_collector_to_names", {})):
        if isinstance(existing, FindingsCollector):
            registry.unregister(existing)
    collector = FindingsCollector(client)
    registry.register(collector)
    return collector
