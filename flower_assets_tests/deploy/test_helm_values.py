"""deploy/helm/values.yaml, rendered as Dagster's Helm chart renders it, against Dagster's schemas.

The chart turns its camelCase values into the instance file (dagster.yaml) of every pod: the
run launcher by its template `dagsterYaml.runLauncher.k8s`, the queue and pools by
`dagsterYaml.concurrency`, the daemon's runMonitoring and runRetries key by key in snake_case.
`rendered_*` below do the same for the keys this file sets. The run launcher is then validated
against dagster-k8s's own schema (K8sRunLauncher.config_type()), with the private
`dagster._config.process_config`, the call Dagster itself makes when it loads a configurable
class: there is no public way to validate it without instantiating the launcher, which needs a
cluster. The whole instance is validated against Dagster's instance schema, and its queue,
pools, monitoring, retries and log handler are loaded into a real DagsterInstance (public API).
"""

from __future__ import annotations

import re

import dagster as dg
import pytest
import yaml
from dagster._config import process_config, resolve_to_config_type, validate_config
from dagster._core.instance.config import dagster_instance_config_schema
from dagster_k8s import K8sRunLauncher

from flower_assets_tests.deploy.compose import DEPLOY

VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
RELEASE_NAMESPACE = "flower"
# Variables the chart sets in every pod, which its run launcher config names ({env: ...}).
CHART_ENV = {
    "DAGSTER_HOME": "/opt/dagster/dagster_home",
    "DAGSTER_K8S_INSTANCE_CONFIG_MAP": "flower-dagster-instance",
    "DAGSTER_K8S_PG_PASSWORD_SECRET": "dagster-postgresql-secret",
    "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP": "flower-dagster-pipeline-env",
    "DAGSTER_PG_PASSWORD": "unused",
}


def snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def rendered_run_launcher(values: dict) -> dict:
    """runLauncher.config.k8sRunLauncher as the chart's template writes it into dagster.yaml."""
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    values_config = launcher["config"]["k8sRunLauncher"]
    config: dict = {
        "load_incluster_config": values_config["loadInclusterConfig"],
        "job_namespace": values_config.get("jobNamespace") or RELEASE_NAMESPACE,
        "image_pull_policy": values_config["imagePullPolicy"],
        "service_account_name": "flower-dagster",
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [
            {"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"},
            *(m["name"] for m in values_config.get("envConfigMaps") or []),
        ],
    }
    if values_config.get("kubeconfigFile"):
        config["kubeconfig_file"] = values_config["kubeconfigFile"]
    if values_config.get("envSecrets"):
        config["env_secrets"] = [s["name"] for s in values_config["envSecrets"]]
    # Passed through as they are (Kubernetes objects keep their camelCase inside).
    for key in ("envVars", "labels", "volumeMounts", "volumes", "resources", "securityContext"):
        if values_config.get(key):
            config[snake(key)] = values_config[key]
    if values_config.get("schedulerName"):
        config["scheduler_name"] = values_config["schedulerName"]
    if values_config.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    if values_config.get("runK8sConfig"):
        config["run_k8s_config"] = {snake(k): v for k, v in values_config["runK8sConfig"].items()}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def rendered_instance(values: dict) -> dict:
    """The instance file the chart renders from these values (its storage and run launcher)."""
    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]
    assert coordinator["enabled"] and coordinator["type"] == "QueuedRunCoordinator"
    queued = coordinator["config"]["queuedRunCoordinator"]
    concurrency = values["concurrency"]
    assert concurrency["enabled"]
    postgresql = values["postgresql"]
    return {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {snake(k): v for k, v in queued.items() if v is not None},
        },
        "concurrency": {
            "pools": {snake(k): v for k, v in concurrency["pools"].items()},
            "runs": {snake(k): v for k, v in concurrency["runs"].items()},
        },
        "run_monitoring": {snake(k): v for k, v in daemon["runMonitoring"].items()},
        "run_retries": {snake(k): v for k, v in daemon["runRetries"].items()},
        "python_logs": {"dagster_handler_config": values["pythonLogs"]["dagsterHandlerConfig"]},
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        "storage": {
            "postgres": {
                "postgres_db": {
                    "username": postgresql["postgresqlUsername"],
                    "password": {"env": "DAGSTER_PG_PASSWORD"},
                    "hostname": postgresql["postgresqlHost"],
                    "db_name": postgresql["postgresqlDatabase"],
                    "port": postgresql["service"]["port"],
                    "params": postgresql["postgresqlParams"],
                }
            }
        },
        "run_launcher": rendered_run_launcher(values),
    }


@pytest.fixture
def chart_env(monkeypatch):
    for key, value in CHART_ENV.items():
        monkeypatch.setenv(key, value)


def test_the_run_launcher_is_valid_for_dagster_k8s(chart_env):
    launcher = rendered_run_launcher(VALUES)
    schema = resolve_to_config_type(K8sRunLauncher.config_type())
    result = process_config(schema, launcher["config"])
    assert result.success, [error.message for error in result.errors]
    config = result.value
    # Each run its own Kubernetes Job from the location's image, with the platform's secrets.
    assert "job_image" not in config
    assert config["env_secrets"] == ["flower-assets-secrets"]
    assert config["run_k8s_config"]["container_config"]["resources"]["limits"]["memory"] == "2Gi"
    # The schema is really applied: a misspelled key is refused.
    wrong = {**launcher["config"], "loadInclusterConfg": True}
    assert not process_config(schema, wrong).success


def test_the_instance_is_valid_for_dagster(chart_env):
    result = validate_config(dagster_instance_config_schema(), rendered_instance(VALUES))
    assert result.success, [error.message for error in result.errors]


def test_the_queue_pools_monitoring_and_retries_load_into_an_instance(tmp_path, chart_env):
    instance_file = rendered_instance(VALUES)
    # Loaded for real, without a cluster or a database: the launcher and storage stay out.
    del instance_file["run_launcher"], instance_file["storage"]
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_file))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 6
        assert concurrency.pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 30
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
    # The flower_api pool is as narrow as on one machine (compose's instance file).
    compose_instance = yaml.safe_load((DEPLOY / "postgres" / "dagster.yaml").read_text())
    assert compose_instance["concurrency"]["pools"]["default_limit"] == 1


def test_one_image_no_secret_and_the_ui_only_behind_authentication():
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    image = deployment["image"]
    for other in (VALUES["dagsterWebserver"]["image"], VALUES["dagsterDaemon"]["image"]):
        assert (other["repository"], other["tag"]) == (image["repository"], image["tag"])
    assert image["tag"] != "latest"
    assert deployment["codeServerArgs"] == ["-m", "flower_assets.definitions"]
    (upgrade,) = deployment["initContainers"]
    assert upgrade["image"] == f"{image['repository']}:{image['tag']}"
    assert upgrade["command"] == ["flower-assets", "db", "upgrade"]
    # Secrets only by reference to Kubernetes Secrets.
    assert not VALUES["generatePostgresqlPasswordSecret"]
    assert VALUES["postgresql"]["postgresqlPassword"] == ""
    text = (DEPLOY / "helm" / "values.yaml").read_text()
    for variable in ("FLOWER_API_KEY", "FLOWER_ALERT_WEBHOOK_URL", "FLOWER_DATABASE_URL"):
        assert not any(e["name"] == variable for e in deployment["env"])
        assert re.search(rf"^\s*{variable}:", text, re.MULTILINE) is None
    assert deployment["envSecrets"] == [{"name": "flower-assets-secrets"}]
    # The UI: no Service outside the cluster, one ingress that authenticates first.
    assert VALUES["dagsterWebserver"]["service"]["type"] == "ClusterIP"
    ingress = VALUES["ingress"]
    assert ingress["enabled"] and ingress["dagsterWebserver"]["tls"]["enabled"]
    assert ingress["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
