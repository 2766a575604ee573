"""The Kubernetes deployment files hold together (no cluster here: Kubernetes itself is not run):
they parse, name what the repository builds and serves, keep credentials in Secrets, and queue
sharded VEE days as deploy/dagster.yaml does."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

from smartmdm_pipelines.defs.vee.scale import SHARD_TAGS

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
CREDENTIAL = re.compile(r"PASSWORD|BROKER|DATABASE_URL|SECRET|TOKEN|KEY", re.IGNORECASE)


def values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def worker() -> dict:
    return yaml.safe_load((K8S / "celery-workers.yaml").read_text())


def dockerfile() -> str:
    return (REPO / "deploy" / "Dockerfile").read_text()


def _walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, node


def test_no_credential_is_written_in_the_files() -> None:
    for name, doc in (("values.yaml", values()), ("celery-workers.yaml", worker())):
        for path, value in _walk(doc):
            last = path.rsplit(".", 1)[-1].lower()
            assert not ("password" in last and isinstance(value, str)), f"{name}: {path} holds a password"
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), (
                f"{name}: {path} holds a URL with credentials"
            )
    containers = worker()["spec"]["template"]["spec"]["containers"]
    for env in containers[0]["env"]:
        if CREDENTIAL.search(env["name"]):
            assert "secretKeyRef" in env.get("valueFrom", {}), f"{env['name']} must come from a Secret"


def test_the_image_serves_the_code_location_the_chart_names() -> None:
    [deployment] = values()["dagster-user-deployments"]["deployments"]
    module = deployment["codeServerArgs"][deployment["codeServerArgs"].index("-m") + 1]
    assert module == "smartmdm_pipelines.definitions"
    assert importlib.import_module(module).defs is not None
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == module
    docker = dockerfile()
    assert f'"-m", "{module}"' in docker and f'"-p", "{deployment["port"]}"' in docker
    for source in re.findall(r"^COPY (.+) \S+$", docker, flags=re.MULTILINE):
        for item in source.split():
            assert (REPO / item).exists(), f"Dockerfile copies {item}, which the repository lacks"
    assert "[k8s]" in docker  # dagster-k8s: the K8sRunLauncher of the chart's instance


def test_the_workers_run_the_same_image_and_the_dagster_celery_app() -> None:
    [deployment] = values()["dagster-user-deployments"]["deployments"]
    [container] = worker()["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    command = container["command"]
    app = command[command.index("-A") + 1]
    assert importlib.import_module(app).app.main == "dagster"  # dagster_celery's Celery app
    assert command[command.index("-Q") + 1] == "dagster"  # the queue celery_executor sends steps to
    secrets = {s["name"] for s in values()["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]}
    assert {"smartmdm-store", "smartmdm-celery"} <= secrets


def test_sharded_days_are_queued_one_at_a_time_as_in_the_instance_yaml() -> None:
    [(tag, _)] = SHARD_TAGS.items()
    chart = values()["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    chart_limits = {x["key"]: x["limit"] for x in chart["tagConcurrencyLimits"]}
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    instance_limits = {
        x["key"]: x["limit"] for x in instance["concurrency"]["runs"]["tag_concurrency_limits"]
    }
    assert chart_limits == instance_limits
    assert chart_limits[tag] == 1
