"""The chart's PrometheusRule and Grafana dashboard: off by default; when on, the rule is what the
Prometheus Operator accepts, every expression parses as Prometheus parses PromQL (promql-parser,
the Rust port of Prometheus' own parser, with its type checks), and every query names only
series drbot exports."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest
import redis
from prometheus_client.metrics_core import Metric

from tests.ship.chart import find, manifests

ON = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
      "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "drbot"}}}
ALERTS = {"DrbotBackupMissed", "DrbotVerificationFailed", "DrbotWorkerAbsent",
          "DrbotQueueStuck", "DrbotJobFailed"}
# Prometheus' own series, one per scrape target (not drbot's to export): only the worker-absent
# alert uses it, because a worker that is down exports nothing.
PROMETHEUS_OWN = {"up"}
# Grafana replaces its variables before the query reaches Prometheus (grafana.com/docs,
# "Global variables"); any valid duration stands in for them here.
GRAFANA_DURATIONS = re.compile(r"\$__(rate_interval|interval|range)\b")
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_count", "_sum", "_created")}


def sample_names(families: list[Metric]) -> set[str]:
    return {f.name + suffix for f in families for suffix in SUFFIXES[f.type]}


@pytest.fixture
def exported(redis_url: str) -> set[str]:
    """Every series name drbot's processes expose: bot/metrics.py's registry, and the backup
    watch's gauges, which the bot collects from Redis on each scrape (bot/watch/gauges.py)."""
    from bot import metrics
    from bot.watch.gauges import FindingsCollector

    families = [family for value in vars(metrics).values() if hasattr(value, "describe")
                and hasattr(value, "_name") for family in value.describe()]
    client = redis.Redis.from_url(redis_url)
    try:
        families += list(FindingsCollector(client).collect())
    finally:
        client.close()
    names = sample_names(families)
    assert {"drbot_jobs_total", "drbot_backup_verify_ok", "drbot_relay_lag_seconds_bucket"} <= names
    return names


def selectors(expr: str) -> list[promql_parser.VectorSelector]:
    """Every vector selector in the expression (inside ranges, calls and aggregations too)."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)
    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def test_neither_is_rendered_by_default() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in manifests()}
    assert not [k for k in kinds if k[0] == "PrometheusRule" or k[1].endswith("-dashboard")]


def test_the_rule_parses_and_names_only_exported_series(exported: set[str]) -> None:
    from cloudcoil.models.prometheus_operator.v1 import PrometheusRule

    docs = manifests(ON)
    doc = find(docs, "PrometheusRule")
    model = PrometheusRule.model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc
    rules = [rule for group in doc["spec"]["groups"] for rule in group["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    service = find(docs, "Service", "-metrics")["metadata"]["name"]
    for rule in rules:
        found = selectors(rule["expr"])  # raises on what Prometheus would refuse to load
        assert found, rule["alert"]
        unknown = {s.name for s in found} - exported - PROMETHEUS_OWN
        assert not unknown, f"{rule['alert']} names {unknown}, which drbot does not export"
        for selector in found:  # only this release's series (the ServiceMonitor's job label)
            labels = {m.name: m.value for m in selector.matchers.matchers}
            assert (labels.get("job"), labels.get("namespace")) == (service, "drbot"), \
                rule["alert"]
        if "for" in rule:
            assert promql_parser.parse_duration(rule["for"]).total_seconds() >= 300
        for text in rule["annotations"].values():
            assert text.count("{{") == text.count("}}"), text  # Go templates left for Prometheus
            for label in re.findall(r"\$labels\.(\w+)", text):
                assert label in rule["expr"] or label in ("kind", "name"), (rule["alert"], label)
    worker = next(r for r in rules if r["alert"] == "DrbotWorkerAbsent")
    pod = next(m for s in selectors(worker["expr"]) for m in s.matchers.matchers
               if m.name == "pod")
    assert re.fullmatch(pod.value, "drbot-worker-7c9d8-x2x7q")  # a Deployment's pod name
    assert not re.fullmatch(pod.value, "drbot-bot-5f6d7-abcde")


def test_an_expression_prometheus_refuses_is_refused() -> None:
    """The parser is strict enough to stand in for promtool: types and syntax both."""
    for bad in ("rate(drbot_jobs_total)", "sum by (command) drbot_jobs_total[5m] > 0",
                "drbot_jobs_total{status=\"failed\"", "absent(up{job=\"x\"}[5m] == 1)"):
        with pytest.raises(ValueError):
            promql_parser.parse(bad)


def test_the_dashboard_loads_and_queries_only_exported_series(exported: set[str]) -> None:
    configmap = find(manifests(ON), "ConfigMap", "-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "drbot"}
    dashboard = json.loads(configmap["data"]["drbot.json"])
    assert dashboard["uid"] == "drbot" and dashboard["title"] == "drbot"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    queried: set[str] = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"].strip("${}") in variables
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            names = {s.name for s in selectors(GRAFANA_DURATIONS.sub("5m", target["expr"]))}
            assert names and not names - exported, (panel["title"], names - exported)
            queried |= names
    for topic in ("drbot_jobs_total", "drbot_job_duration_seconds_bucket",
                  "drbot_backup_age_seconds", "drbot_relay_lag_seconds_bucket"):
        assert topic in queried  # jobs, durations, backup ages, relay lag
    cells = [(x, y) for p in dashboard["panels"] for x in range(p["gridPos"]["x"], p["gridPos"][
        "x"] + p["gridPos"]["w"]) for y in range(p["gridPos"]["y"], p["gridPos"]["y"]
                                                  + p["gridPos"]["h"])]
    assert len(cells) == len(set(cells)), "panels overlap"
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])
