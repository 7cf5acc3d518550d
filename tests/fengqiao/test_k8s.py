"""The county's Kubernetes kustomization, rendered from its topology: every manifest passes the
Kubernetes API's own schemas offline (kubernetes-validate), and carries what the cluster needs
— the county's code and ports, the NATS address, the data folder on a claim, a non-root user,
/metrics for Prometheus."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fengqiao import k8s
from fengqiao.topology import NodeSpec, load_topology
from tests.fengqiao.test_natsconfig import SAMPLE

VERSIONS = ("1.28.0", "1.37.0")  # the oldest this needs (gRPC probes) and the newest known


def rendered(tmp_path: Path, **changes: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    topology = load_topology(SAMPLE)
    if changes:
        county = dataclasses.replace(topology.county, **changes)
        topology = dataclasses.replace(topology, nodes=(county, *topology.nodes[1:]))
    k8s.render(topology, tmp_path, version="9.9.9")
    kustomization = yaml.safe_load((tmp_path / "kustomization.yaml").read_text(encoding="utf-8"))
    manifests = [
        doc
        for name in kustomization["resources"]
        for doc in yaml.safe_load_all((tmp_path / name).read_text(encoding="utf-8"))
    ]
    return kustomization, manifests


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_manifest_passes_the_kubernetes_schemas(tmp_path: Path, version: str) -> None:
    _, manifests = rendered(tmp_path)
    assert len(manifests) == 12
    for manifest in manifests:
        kubernetes_validate.validate(manifest, version, strict=True)  # raises on any error


def test_the_kustomization_names_every_file_it_needs(tmp_path: Path) -> None:
    kustomization, _ = rendered(tmp_path)
    assert kustomization["namespace"] == "fengqiao"
    for name in [*kustomization["resources"], *kustomization["configMapGenerator"][0]["files"]]:
        assert (tmp_path / name).is_file(), name
    assert load_topology(tmp_path / "topology.yaml") == load_topology(SAMPLE)
    assert kustomization["images"] == [{"name": "fengqiao", "newName": "fengqiao", "newTag": "9.9.9"}]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with kustomize) not installed")
def test_kubectl_kustomize_builds_it(tmp_path: Path) -> None:
    rendered(tmp_path)
    built = subprocess.run(["kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True, check=True)
    kinds = sorted(doc["kind"] for doc in yaml.safe_load_all(built.stdout))
    assert kinds.count("Deployment") == 4 and "ConfigMap" in kinds
    assert all(doc["metadata"].get("namespace", "fengqiao") == "fengqiao" for doc in yaml.safe_load_all(built.stdout))


def test_the_services_carry_the_countys_code_ports_nats_data_claim_user_and_metrics(tmp_path: Path) -> None:
    _, manifests = rendered(tmp_path, code="371702", metrics_port=9100)
    deployments = by_kind(manifests, "Deployment")
    assert set(deployments) == {f"fengqiao-{s}" for s in ("intake", "routing", "assessment", "federation")}
    claim = by_kind(manifests, "PersistentVolumeClaim")["fengqiao-data"]
    for deployment in deployments.values():
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert container["args"][:3] == ["node", "--code", "371702"] and env["FQ_NODE_CODE"] == "371702"
        assert env["FQ_NATS_URL"] == "nats://nats:4222" and env["FQ_BIND_HOST"] == "0.0.0.0"
        assert env["FQ_METRICS_PORT"] == "9100" and env["FQ_METRICS_HOST"] == "0.0.0.0"
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9100"
        assert {"name": "metrics", "containerPort": 9100} in container["ports"]
        grpc = int(env["FQ_GRPC_PORT"])
        assert container["readinessProbe"]["grpc"]["port"] == grpc
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert {"name": "data", "mountPath": env["FQ_DATA_DIR"]} in container["volumeMounts"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] and pod["spec"]["securityContext"]["runAsUser"] != 0
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
        assert secrets == {"DATABASE_URL", "FQ_TOKEN_SECRET", "FQ_PERSONAL_DATA_KEY", "FQ_ADMIN_PASSWORD"}
    federation = deployments["fengqiao-federation"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in federation["env"]}
    assert env["FQ_SERVE_HTTP"] == "true" and env["FQ_HTTP_PORT"] == "8700"
    assert json.loads(env["FQ_SERVICE_ADDRESSES"]) == {
        "intake": "fengqiao-intake:8751", "routing": "fengqiao-routing:8752", "assessment": "fengqiao-assessment:8753",
    }  # fmt: skip
    services = by_kind(manifests, "Service")
    assert {p["port"] for p in services["fengqiao-federation"]["spec"]["ports"]} == {8750, 8700}


def test_another_county_renders_its_own_code_everywhere(tmp_path: Path) -> None:
    topology = load_topology(SAMPLE)
    other = dataclasses.replace(
        topology,
        name="石家庄市长安区",
        nodes=(NodeSpec(code="130102", name="长安区综治中心", grpc_port=9750, http_port=9700),),
    )
    k8s.render(other, tmp_path, version="0.1.0")
    text = "".join(p.read_text(encoding="utf-8") for p in tmp_path.iterdir())
    assert "371702" not in text and "牡丹" not in text
    assert "130102" in text and "长安区综治中心" in text and "9750" in text and "containerPort: 9700" in text
