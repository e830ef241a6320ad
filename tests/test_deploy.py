"""deploy/kubernetes: parseable YAML whose ports, probes, env vars, user and
Envoy configuration agree with the service's settings, its Dockerfile and
docs/envoy.md."""

import re
from pathlib import Path
from typing import Any

import yaml

from billing_service.config import Settings
from tests.test_dockerfile import arguments_of

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "kubernetes"


def documents(name: str) -> dict[str, dict[str, Any]]:
    """The file's objects by kind (one of each per file)."""
    loaded = [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    kinds = [doc["kind"] for doc in loaded]
    assert len(kinds) == len(set(kinds)), kinds
    return {doc["kind"]: doc for doc in loaded}


def service_objects() -> dict[str, dict[str, Any]]:
    return documents("billing-service.yaml")


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    assert isinstance(found, dict)
    return found


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in c.get("env", [])}


def test_every_file_parses_and_every_env_var_is_a_setting() -> None:
    settings = {f"BILLING_{name.upper()}" for name in Settings.model_fields}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
    deployment = service_objects()["Deployment"]
    job = documents("billing-migrate.yaml")["Job"]
    for c in (container(deployment, "billing-service"), container(job, "migrate")):
        assert set(env_of(c)) <= settings
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]


def test_ports_and_probes_agree_with_the_listen_addresses() -> None:
    objects = service_objects()
    serving = container(objects["Deployment"], "billing-service")
    env = env_of(serving)
    ports = {p["name"]: p["containerPort"] for p in serving["ports"]}
    assert env["BILLING_GRPC_ADDR"] == f"0.0.0.0:{ports['grpc']}"
    assert env["BILLING_HTTP_ADDR"] == f"0.0.0.0:{ports['http']}"
    assert serving["args"] == ["billing-service", "serve"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert serving[probe]["grpc"] == {"port": ports["grpc"]}  # the gRPC health service
    service_ports = {p["name"]: p for p in objects["Service"]["spec"]["ports"]}
    assert {name: p["targetPort"] for name, p in service_ports.items()} == {
        "grpc": "grpc",
        "http": "http",
    }
    labels = objects["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert objects["Service"]["spec"]["selector"] == labels
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"] == labels


def test_shutdown_and_migration_fit_the_service() -> None:
    deployment = service_objects()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    env = env_of(container(deployment, "billing-service"))
    assert pod["terminationGracePeriodSeconds"] > float(env["BILLING_SHUTDOWN_GRACE_SECONDS"])
    # Migrations run once per release, by the Job, never by the replicas.
    assert env["BILLING_MIGRATE_ON_START"] == "false"
    job = documents("billing-migrate.yaml")["Job"]
    migrate = container(job, "migrate")
    assert migrate["args"] == ["billing-service", "migrate"]
    assert migrate["image"] == container(deployment, "billing-service")["image"]
    assert env_of(migrate)["BILLING_DATABASE_URL"] == env["BILLING_DATABASE_URL"]


def test_pods_run_as_the_images_user() -> None:
    (user,) = {args.split(":")[0] for args in arguments_of("USER")}
    for workload in (service_objects()["Deployment"], documents("billing-migrate.yaml")["Job"]):
        context = workload["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True
        assert str(context["runAsUser"]) == user


def test_the_envoy_sidecar_config_is_the_documented_one_pointed_at_the_service() -> None:
    objects = documents("envoy-sidecar.yaml")
    template = objects["ConfigMap"]["data"]["envoy.yaml.template"]
    config = yaml.safe_load(template)
    documented = yaml.safe_load(
        re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "envoy.md").read_text(), re.S)[1]  # type: ignore[index]
    )
    (billing,) = [c for c in config["static_resources"]["clusters"] if c["name"] == "billing"]
    endpoint = billing["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    address = endpoint["address"]["socket_address"]
    service = service_objects()["Service"]
    grpc_port = {p["name"]: p["port"] for p in service["spec"]["ports"]}["grpc"]
    assert (address["address"], address["port_value"]) == (service["metadata"]["name"], grpc_port)
    options = billing["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in options["explicit_http_config"]  # gRPC needs HTTP/2
    # Beside the Service's address and the key's placeholder, the same as the docs.
    address["address"] = "billing"
    assert _without_key(config) == _without_key(documented)
    assert "${BILLING_OPERATOR_KEY}" in template
    envoy = container(objects["Deployment"], "envoy")
    assert "BILLING_OPERATOR_KEY" in env_of(envoy)


def _without_key(config: dict[str, Any]) -> str:
    return re.sub(r"Bearer [^\"']+", "Bearer KEY", yaml.safe_dump(config, sort_keys=True))
