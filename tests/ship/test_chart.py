"""The Helm chart renders (default and non-default values), lints clean, validates strictly
against Kubernetes 1.30, and keeps the promises of docs/deploy.md and docs/security.md."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ship.chart import CHART, find, manifests, with_image

CUSTOM = {
    "worker": {"replicas": 3, "kubeconfigKey": "kubeconfig",
               "extraVolumes": [{"name": "iac", "persistentVolumeClaim": {"claimName": "iac"}}],
               "extraVolumeMounts": [{"name": "iac", "mountPath": "/srv/iac"}]},
    "bot": {"secretKeys": {"slack_bot_token": None, "slack_app_token": None,
                           "discord_token": "discord-token"},
            "env": {"DRBOT_DISCORD_GUILD": "1234"}},
    "redis": {"bundled": False, "url": "rediss://redis.example:6380/0",
              "auth": {"existingSecret": "shared-redis", "key": "password"}},
    "config": {"policy": {"people": {"alice": {"accounts": ["discord:1"], "roles": ["admin"]}},
                          "commands": {"status": {"allow": ["admin"]}}}},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]},
    "image": {"tag": "1.2.3"},
}

INGRESS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
SLACK_HTTP = {
    "bot": {"secretKeys": {"slack_app_token": None, "slack_signing_secret": "slack-signing-secret"}},
    "slackHttp": {"enabled": True, "port": 3100,
                  "service": {"annotations": {"example.com/team": "ops"}},
                  "ingress": {"enabled": True, "className": "traefik", "host": "drbot.example.com",
                              "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
                              "tls": [{"secretName": "drbot-slack-tls",
                                       "hosts": ["drbot.example.com"]}]},
                  "from": [INGRESS_PEER]},
}
VARIANTS = pytest.mark.parametrize("values", [{}, CUSTOM, SLACK_HTTP],
                                   ids=["default", "custom", "slack-http"])


def pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"].rsplit("-", 1)[1]: d["spec"]["template"]["spec"]
            for d in docs if d["kind"] in ("Deployment", "StatefulSet")}


def env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}


def secret_volumes(pod: dict[str, Any]) -> set[str]:
    return {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}


@VARIANTS
def test_every_manifest_validates_strictly_for_kubernetes_1_30(values: dict[str, Any],
                                                                tmp_path: Path) -> None:
    docs = manifests(values)
    files = []
    for index, doc in enumerate(docs):
        path = tmp_path / f"{index:02d}-{doc['kind']}.yaml"
        path.write_text(yaml.safe_dump(doc))
        files.append(str(path))
    done = subprocess.run([str(Path(sys.executable).parent / "kubernetes-validate"), "--strict",
                           "-k", "1.30.0", *files], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    custom = sorted(d["kind"] for d in docs if d["apiVersion"].startswith("monitoring.coreos.com"))
    assert custom == (["PrometheusRule", "ServiceMonitor"] if values.get("serviceMonitor") else [])


def test_lint_is_clean() -> None:
    import helm_python

    for values in ({}, CUSTOM, SLACK_HTTP):
        report = helm_python.lint(str(CHART), with_image(values), strict=True,
                                  kube_version="v1.30.0")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert problems == [] and report["errors"] == [], report


def test_processes_and_their_counts() -> None:
    docs = manifests(CUSTOM)
    bot, worker = find(docs, "Deployment", "-bot"), find(docs, "Deployment", "-worker")
    scheduler = find(docs, "Deployment", "-scheduler")
    assert (bot["spec"]["replicas"], bot["spec"]["strategy"]["type"]) == (1, "Recreate")
    assert (scheduler["spec"]["replicas"], scheduler["spec"]["strategy"]["type"]) == (1, "Recreate")
    assert worker["spec"]["replicas"] == 3
    for name, deployment in (("bot", bot), ("worker", worker), ("scheduler", scheduler)):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"] == [name] and container["image"] == "registry.example/drbot:1.2.3"


def test_secrets_are_mounted_only_where_they_are_needed() -> None:
    found = pods(manifests())
    assert secret_volumes(found["bot"]) == {"drbot-signing", "drbot-redis", "drbot-bot"}
    assert secret_volumes(found["worker"]) == {"drbot-signing", "drbot-redis", "drbot-worker"}
    assert secret_volumes(found["scheduler"]) == {"drbot-signing", "drbot-redis"}
    for name in ("bot", "worker", "scheduler"):
        variables = env(found[name])
        assert variables["DRBOT_SIGNING_KEY_FILE"] == "/etc/drbot/signing/key"
        assert variables["DRBOT_REDIS_PASSWORD_FILE"] == "/etc/drbot/redis/password"
        assert not any(e.get("valueFrom") for e in found[name]["containers"][0]["env"]), \
            "secrets reach drbot as files, never as environment values"
    assert env(found["bot"])["DRBOT_SLACK_BOT_TOKEN_FILE"] == "/etc/drbot/bot/slack-bot-token"
    assert "DRBOT_KUBECONFIG" not in env(found["worker"])


def test_the_worker_keeps_what_it_saw_in_a_volume_of_its_own() -> None:
    worker = pods(manifests())["worker"]
    assert env(worker)["DRBOT_STATE_DIR"] == "/var/lib/drbot/worker"
    assert {"name": "state", "mountPath": "/var/lib/drbot/worker"} in \
        worker["containers"][0]["volumeMounts"]
    assert {"name": "state", "emptyDir": {}} in worker["volumes"]
    worker = pods(manifests({"worker": {"stateClaim": "drbot-worker-state"}}))["worker"]
    assert {"name": "state", "persistentVolumeClaim": {"claimName": "drbot-worker-state"}} in \
        worker["volumes"]


def test_the_bot_mounts_the_files_of_its_apprise_secrets_and_the_worker_does_not() -> None:
    """The bot posts alerts, Apprise's too: the files its URLs' secrets come from are mounted
    in the bot's pod only (the inventory's alerts.apprise[].secrets name them)."""
    volume = {"name": "ntfy", "secret": {"secretName": "drbot-ntfy"}}
    mount = {"name": "ntfy", "mountPath": "/etc/drbot/apprise", "readOnly": True}
    found = pods(manifests({"bot": {"extraVolumes": [volume], "extraVolumeMounts": [mount]}}))
    assert volume in found["bot"]["volumes"]
    assert mount in found["bot"]["containers"][0]["volumeMounts"]
    assert "drbot-ntfy" not in secret_volumes(found["worker"])
    assert "drbot-ntfy" not in secret_volumes(pods(manifests())["bot"])


def test_custom_secrets_kubeconfig_and_external_redis() -> None:
    docs = manifests(CUSTOM)
    found = pods(docs)
    assert set(found) == {"bot", "worker", "scheduler"}, "no bundled Redis with an external one"
    bot_env = env(found["bot"])
    assert bot_env["DRBOT_DISCORD_TOKEN_FILE"] == "/etc/drbot/bot/discord-token"
    assert "DRBOT_SLACK_BOT_TOKEN_FILE" not in bot_env and bot_env["DRBOT_DISCORD_GUILD"] == "1234"
    worker = found["worker"]
    assert env(worker)["REDIS_URL"] == "rediss://redis.example:6380/0"
    assert env(worker)["DRBOT_KUBECONFIG"] == "/etc/drbot/worker/kubeconfig"
    assert worker["automountServiceAccountToken"] is False
    assert {"name": "iac", "mountPath": "/srv/iac"} in worker["containers"][0]["volumeMounts"]
    assert "shared-redis" in secret_volumes(worker)
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"] == ["drbot"]
    monitor = find(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    policy = yaml.safe_load(find(docs, "ConfigMap")["data"]["policy.yaml"])
    assert policy["people"]["alice"]["roles"] == ["admin"]


def test_external_redis_needs_a_url() -> None:
    import helm_python

    with pytest.raises(helm_python.HelmError, match="redis.url is required"):
        manifests({"redis": {"bundled": False}})


def test_bundled_redis_is_durable_private_and_off_longhorn() -> None:
    docs = manifests()
    redis = find(docs, "StatefulSet", "-redis")
    claim = redis["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "local-path"
    script = redis["spec"]["template"]["spec"]["initContainers"][0]["args"][0]
    assert "appendonly yes" in script and 'requirepass $admin' in script
    assert "maxmemory-policy noeviction" in script
    for process in ("bot", "worker", "scheduler"):  # each its own ACL user (tests/bot/test_redis_acl.py)
        assert env(pods(docs)[process])["REDIS_URL"] == \
            f"redis://{process}@drbot-redis.drbot.svc:6379/0"
    policy = find(docs, "NetworkPolicy", "-redis")["spec"]
    peer = policy["ingress"][0]["from"][0]["podSelector"]
    assert peer["matchExpressions"][0]["values"] == ["bot", "worker", "scheduler"]
    assert policy["ingress"][0]["ports"] == [{"port": "redis", "protocol": "TCP"}]


@VARIANTS
def test_every_container_is_locked_down_with_probes_and_resources(values: dict[str, Any]) -> None:
    for name, pod in pods(manifests(values)).items():
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"] + pod.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"]
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert {"requests", "limits"} <= set(container["resources"])
        main = pod["containers"][0]
        assert main["livenessProbe"] and main["readinessProbe"], name
        if name != "redis":
            assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert main["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_notes_name_the_secrets_to_create() -> None:
    import helm_python

    notes = helm_python.Chart.load(str(CHART)).render(with_image({}), name="dr", namespace="ops")[
        "drbot/templates/NOTES.txt"]
    for secret in ("dr-drbot-signing", "dr-drbot-redis", "dr-drbot-bot", "dr-drbot-worker"):
        assert secret in notes
    assert "kubectl -n ops create secret generic dr-drbot-signing" in notes


def test_slack_http_mode_reaches_the_bot_and_only_the_bot() -> None:
    docs = manifests(SLACK_HTTP)
    bot = find(docs, "Deployment", "-bot")
    container = bot["spec"]["template"]["spec"]["containers"][0]
    variables = env(bot["spec"]["template"]["spec"])
    assert variables["DRBOT_SLACK_HTTP_HOST"] == "0.0.0.0"
    assert variables["DRBOT_SLACK_HTTP_PORT"] == "3100"
    assert variables["DRBOT_SLACK_SIGNING_SECRET_FILE"] == "/etc/drbot/bot/slack-signing-secret"
    assert "DRBOT_SLACK_APP_TOKEN_FILE" not in variables, "an app token would select Socket Mode"
    assert {"name": "slack", "containerPort": 3100, "protocol": "TCP"} in container["ports"]
    for name in ("worker", "scheduler"):
        other = find(docs, "Deployment", f"-{name}")["spec"]["template"]["spec"]
        assert [p["name"] for p in other["containers"][0]["ports"]] == ["http"]
        assert not {"DRBOT_SLACK_HTTP_HOST", "DRBOT_SLACK_HTTP_PORT"} & set(env(other))

    service = find(docs, "Service", "-slack")
    assert service["metadata"]["name"] == "drbot-slack"
    assert service["metadata"]["annotations"] == {"example.com/team": "ops"}
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "drbot",
                                           "app.kubernetes.io/instance": "drbot",
                                           "app.kubernetes.io/component": "bot"}
    assert service["spec"]["selector"].items() <= \
        bot["spec"]["template"]["metadata"]["labels"].items()
    for name in ("worker", "scheduler", "redis"):
        kind = "StatefulSet" if name == "redis" else "Deployment"
        labels = find(docs, kind, f"-{name}")["spec"]["template"]["metadata"]["labels"]
        assert not service["spec"]["selector"].items() <= labels.items(), name
    assert service["spec"]["ports"] == [{"name": "slack", "port": 3100, "targetPort": "slack",
                                         "protocol": "TCP"}]
    assert service["metadata"]["labels"]["app.kubernetes.io/component"] != "metrics", \
        "the ServiceMonitor must not scrape it"

    ingress = find(docs, "Ingress", "-slack")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["tls"] == [{"secretName": "drbot-slack-tls",
                                       "hosts": ["drbot.example.com"]}]
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "drbot.example.com"
    assert rule["http"]["paths"] == [{"path": "/slack/events", "pathType": "Exact", "backend": {
        "service": {"name": "drbot-slack", "port": {"name": "slack"}}}}]

    policy = find(docs, "NetworkPolicy", "-slack")["spec"]
    assert policy["podSelector"] == {"matchLabels": service["spec"]["selector"]}
    assert policy["ingress"] == [{"ports": [{"port": "slack", "protocol": "TCP"}],
                                  "from": [INGRESS_PEER]}]
    shared = find(docs, "NetworkPolicy", "drbot")["spec"]
    assert shared["ingress"] == [{"ports": [{"port": "http", "protocol": "TCP"}]}], \
        "the worker and scheduler do not accept the slack port"


def test_slack_http_without_ingress_or_peers() -> None:
    values = {**SLACK_HTTP, "slackHttp": {"enabled": True, "service": {"type": "LoadBalancer"}}}
    docs = manifests(values)
    assert find(docs, "Service", "-slack")["spec"]["type"] == "LoadBalancer"
    assert find(docs, "Service", "-slack")["spec"]["ports"][0]["port"] == 3000
    assert not [d for d in docs if d["kind"] == "Ingress"]
    policy = find(docs, "NetworkPolicy", "-slack")["spec"]
    assert policy["ingress"] == [{"ports": [{"port": "slack", "protocol": "TCP"}]}], \
        "no slackHttp.from: from anywhere (Slack comes through an ingress controller or proxy)"
    assert env(pods(docs)["bot"])["DRBOT_SLACK_HTTP_PORT"] == "3000"
    no_host = {**SLACK_HTTP, "slackHttp": {"enabled": True, "ingress": {"enabled": True}}}
    ingress = find(manifests(no_host), "Ingress", "-slack")["spec"]
    assert "host" not in ingress["rules"][0] and "tls" not in ingress
    assert "ingressClassName" not in ingress
    emptied = {**SLACK_HTTP, "bot": {"secretKeys": {"slack_app_token": "",
                                                    "slack_signing_secret": "slack-signing-secret"}}}
    assert "DRBOT_SLACK_APP_TOKEN_FILE" not in env(pods(manifests(emptied))["bot"])
    closed = manifests({**SLACK_HTTP, "networkPolicy": {"enabled": False}})
    assert not [d for d in closed if d["kind"] == "NetworkPolicy"]


def test_default_has_no_slack_http() -> None:
    docs = manifests()
    assert not [d for d in docs if d["kind"] == "Ingress"]
    assert not [d for d in docs if d["metadata"]["name"].endswith("-slack")]
    bot = pods(docs)["bot"]
    assert [p["name"] for p in bot["containers"][0]["ports"]] == ["http"]
    assert not {"DRBOT_SLACK_HTTP_HOST", "DRBOT_SLACK_HTTP_PORT"} & set(env(bot))
    assert env(bot)["DRBOT_SLACK_APP_TOKEN_FILE"] == "/etc/drbot/bot/slack-app-token"


@pytest.mark.parametrize(("secret_keys", "message"), [
    ({}, "needs bot.secretKeys.slack_signing_secret"),
    ({"slack_app_token": None}, "needs bot.secretKeys.slack_signing_secret"),
    ({"slack_signing_secret": "slack-signing-secret"}, "still maps slack_app_token"),
    ({"slack_app_token": None, "slack_bot_token": None,
      "slack_signing_secret": "slack-signing-secret"}, "needs bot.secretKeys.slack_bot_token"),
], ids=["defaults", "no-signing-secret", "app-token-kept", "no-bot-token"])
def test_slack_http_refuses_keys_that_would_not_serve_http(secret_keys: dict[str, Any],
                                                           message: str) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmError, match=message):
        manifests({"slackHttp": {"enabled": True}, "bot": {"secretKeys": secret_keys}})


def test_slack_http_refuses_an_app_token_in_env_and_a_shared_port() -> None:
    import helm_python

    with pytest.raises(helm_python.HelmError, match="sets DRBOT_SLACK_APP_TOKEN_FILE"):
        manifests({**SLACK_HTTP, "env": {"DRBOT_SLACK_APP_TOKEN_FILE": "/elsewhere/app-token"}})
    with pytest.raises(helm_python.HelmError, match="slackHttp.port and http.port are both 8080"):
        manifests({**SLACK_HTTP, "slackHttp": {"enabled": True, "port": 8080}})


def _notes(values: dict[str, Any]) -> str:
    import helm_python

    return helm_python.Chart.load(str(CHART)).render(with_image(values), name="dr",
                                                     namespace="ops")[
        "drbot/templates/NOTES.txt"]


def test_notes_give_the_slack_request_url() -> None:
    assert "https://drbot.example.com/slack/events" in _notes(SLACK_HTTP)
    assert "slack-signing-secret" in _notes(SLACK_HTTP)
    exposed = _notes({**SLACK_HTTP, "slackHttp": {"enabled": True}})
    assert "https://<your host>/slack/events" in exposed
    assert "Service\ndr-drbot-slack port 3000" in exposed
    assert "/slack/events" not in _notes({})


def test_every_deployment_gives_a_busy_worker_its_stop_bound() -> None:
    """A worker stopped with a running job needs 2 × cancel grace + 10 s to record it; the
    chart, the systemd unit and Compose must wait at least that before SIGKILL."""
    import re

    from bot.config.settings import Settings
    from bot.worker.shutdown import stop_seconds

    grace = Settings.model_fields["cancel_grace_seconds"].default
    bound = stop_seconds(grace)
    worker = pods(manifests({}))["worker"]
    assert worker["terminationGracePeriodSeconds"] >= bound
    root = Path(__file__).resolve().parents[2]
    unit = (root / "deploy/systemd/drbot-worker@.service").read_text()
    assert "KillMode=mixed" in unit  # SIGTERM to the worker alone; it stops its job's children
    timeout = re.search(r"^TimeoutStopSec=(\d+)s$", unit, re.M)
    assert timeout and int(timeout.group(1)) >= bound
    compose = yaml.safe_load((root / "deploy/compose.yaml").read_text())
    grace_period = re.fullmatch(r"(\d+)s", compose["services"]["worker"]["stop_grace_period"])
    assert grace_period and int(grace_period.group(1)) >= bound


def test_the_service_monitor_matches_the_prometheus_operator_schema() -> None:
    """kubernetes-validate only warns about custom resources; the prometheus-operator models
    (generated from its CRDs) refuse a missing field and, by the round trip, drop none."""
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    doc = find(manifests(CUSTOM), "ServiceMonitor")
    model = ServiceMonitor.model_validate(doc)
    assert model.model_dump(by_alias=True, exclude_unset=True, mode="json") == doc
    service = next(d for d in manifests(CUSTOM) if d["kind"] == "Service"
                   and d["metadata"]["labels"].items() >= doc["spec"]["selector"]["matchLabels"]
                   .items())
    ports = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in doc["spec"]["endpoints"]} <= ports


def test_the_doctor_checks_exactly_the_worker_cluster_role() -> None:
    """bot/doctor/rbac.py (what `drbot doctor` asks the API server about) is the chart's rule set."""
    from bot.doctor import rbac

    role = find(manifests(), "ClusterRole", "-worker")
    chart = {(verb, group, resource) for rule in role["rules"] for verb in rule["verbs"]
             for group in rule["apiGroups"] for resource in rule["resources"]}
    doctor = {(a.verb, a.group, a.resource + (f"/{a.subresource}" if a.subresource else ""))
              for a in rbac.accesses()}
    assert doctor == chart


def test_values_schema_is_generated_from_values_and_models() -> None:
    from bot.config import chart_schema

    assert (CHART / "values.schema.json").read_text() == chart_schema.text(), \
        "run `python -m bot.config.chart_schema`"


@pytest.mark.parametrize(("values", "error"), [
    ({"worker": {"replica": 3}}, "at '/worker': additional properties 'replica' not allowed"),
    ({"redis": {"bundled": "no"}}, "at '/redis/bundled': got string, want boolean"),
    ({"worker": {"replicas": -1}}, "at '/worker/replicas': minimum: got -1, want 0"),
    ({"config": {"inventory": {"nodes": {"n1": {"host": "pve1"}}}}},
     "at '/config/inventory/nodes/n1': missing properties 'vmid', 'role', 'terraform_address', "
     "'ansible_host'"),
    ({"config": {"policy": {"comands": {}}}},
     "at '/config/policy': additional properties 'comands' not allowed"),
])
def test_helm_refuses_wrong_values(values: dict[str, Any], error: str) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmValuesError) as caught:
        helm_python.Chart.load(str(CHART)).render(values, name="drbot", namespace="drbot")
    assert error in str(caught.value)
    linted = helm_python.lint(str(CHART), values, strict=True, kube_version="v1.30.0")
    assert any(error in e for e in linted["errors"])


def test_the_flux_example_installs_the_chart_with_valid_values() -> None:
    example = Path(__file__).parents[2] / "examples" / "flux" / "helmrelease.yaml"
    source, release = list(yaml.safe_load_all(example.read_text()))
    assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == source["metadata"]["name"]
    chart_path = release["spec"]["chart"]["spec"]["chart"]
    assert (Path(__file__).parents[2] / chart_path / "Chart.yaml").is_file()
    assert "!/helm/drbot/" in source["spec"]["ignore"]
    docs = manifests(release["spec"]["values"])
    worker = find(docs, "Deployment", "-worker")["spec"]["template"]["spec"]
    assert worker["containers"][0]["image"] == "registry.lan/drbot:0.1.0"


def test_no_default_image_is_assumed() -> None:
    """No published image exists: the chart and compose refuse to guess one."""
    import helm_python

    with pytest.raises(helm_python.HelmError, match="set image.repository to the drbot image"):
        helm_python.Chart.load(str(CHART)).render({}, name="drbot", namespace="drbot")
    compose = (Path(__file__).parents[2] / "deploy" / "compose.yaml").read_text()
    assert "${DRBOT_IMAGE:?set DRBOT_IMAGE" in compose and "ghcr.io" not in compose
