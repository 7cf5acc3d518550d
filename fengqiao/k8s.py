"""The county in Kubernetes, rendered from its topology by ``fengqiao topology render`` into
``<out>/k8s/``: a kustomization (``kubectl apply -k``) with the county's code, names, ports and
NATS address filled in — never a hand-edited copy.

- ``county.yaml``: the four services, each its own Deployment against the county's PostgreSQL
  and the NATS cluster of the official chart (``county-nats-values.yaml``), probed by gRPC
  health checking, non-root, with ``/metrics`` announced for Prometheus; the county's data
  folder (attachments, the feed signing key) on a PersistentVolumeClaim shared by them;
- ``postgres.yaml``: the county's database (or point ``DATABASE_URL`` at a managed one);
- ``topology.yaml``: the topology, as the ConfigMap ``fengqiao-topology``.

A site's own changes (image registry, storage class, resources) go in an overlay of its own
that lists this directory as a resource, so re-rendering never overwrites them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fengqiao.topology import NodeSpec, Topology, dump_topology

HEADER = "# Rendered by `fengqiao topology render` from the topology of {name}. Do not edit: re-render.\n"
NAMESPACE = "fengqiao"
IMAGE = "fengqiao"  # `make image` builds fengqiao:<version>; the kustomization's images: maps it
NATS_URL = "nats://nats:4222"  # the official chart's client service, release name "nats"
DATA_DIR = "/var/lib/fengqiao"
METRICS_PORT = 9464  # when the topology leaves the county's metrics_port open
UID = 10001  # the image's fengqiao user
KUBERNETES_MIN = "1.28"  # gRPC probes, PVC access modes as used here


def services(county: NodeSpec) -> dict[str, int]:
    """Each service's gRPC port: federation answers on the county's, the others on the next ones."""
    base = county.grpc_port
    return {"federation": base, "intake": base + 1, "routing": base + 2, "assessment": base + 3}


def _secret(name: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": "fengqiao-secrets", "key": key}}}


def _deployment(topology: Topology, service: str, port: int, ports: dict[str, int]) -> list[dict[str, Any]]:
    county = topology.county
    name = f"fengqiao-{service}"
    metrics = county.metrics_port or METRICS_PORT
    serves_http = service == "federation"
    env: list[dict[str, Any]] = [
        {"name": "FQ_NODE_CODE", "value": county.code},
        {"name": "FQ_TOPOLOGY_FILE", "value": "/etc/fengqiao/topology.yaml"},
        {"name": "FQ_NATS_URL", "value": NATS_URL},
        {"name": "FQ_DATA_DIR", "value": DATA_DIR},
        {"name": "FQ_SERVICES", "value": service},
        {"name": "FQ_BIND_HOST", "value": "0.0.0.0"},
        {"name": "FQ_GRPC_PORT", "value": str(port)},
        {"name": "FQ_SERVE_HTTP", "value": "true" if serves_http else "false"},
        {"name": "FQ_METRICS_HOST", "value": "0.0.0.0"},  # Prometheus scrapes the pod's address
        {"name": "FQ_METRICS_PORT", "value": str(metrics)},
        {"name": "FQ_LOG_FORMAT", "value": "json"},
        _secret("DATABASE_URL", "database-url"),
        _secret("FQ_TOKEN_SECRET", "token-secret"),
        _secret("FQ_PERSONAL_DATA_KEY", "personal-data-key"),
        _secret("FQ_ADMIN_PASSWORD", "admin-password"),
    ]
    container_ports = [{"name": "grpc", "containerPort": port}, {"name": "metrics", "containerPort": metrics}]
    service_ports = [{"name": "grpc", "port": port, "targetPort": "grpc"}]
    if serves_http:
        elsewhere = {s: f"fengqiao-{s}:{p}" for s, p in ports.items() if s != service}
        env += [
            {"name": "FQ_HTTP_PORT", "value": str(county.http_port)},
            {"name": "FQ_SERVICE_ADDRESSES", "value": json.dumps(elsewhere)},
        ]
        container_ports.insert(1, {"name": "http", "containerPort": county.http_port})
        service_ports.append({"name": "http", "port": county.http_port, "targetPort": "http"})
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": service}
    probe = {"grpc": {"port": port}}
    container = {
        "name": service,
        "image": IMAGE,
        "args": ["node", "--code", county.code, "--topology", "/etc/fengqiao/topology.yaml"],
        "env": env,
        "ports": container_ports,
        "startupProbe": {**probe, "failureThreshold": 30, "periodSeconds": 2},
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "topology", "mountPath": "/etc/fengqiao", "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": 1,  # one writer per service: the outbox relay and consumers are not sharded
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(metrics),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "fsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "topology", "configMap": {"name": "fengqiao-topology"}},
                        {"name": "data", "persistentVolumeClaim": {"claimName": "fengqiao-data"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    service_manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels},
        "spec": {"selector": labels, "ports": service_ports},
    }
    return [service_manifest, deployment]


def county_manifests(topology: Topology, *, data_size: str = "100Gi") -> list[dict[str, Any]]:
    """The county's services and its data folder's claim."""
    ports = services(topology.county)
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "fengqiao-data", "labels": {"app.kubernetes.io/name": "fengqiao-data"}},
        "spec": {
            # the four services' pods share it: attachments (intake), the feed signing key (federation)
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": data_size}},
        },
    }
    manifests: list[dict[str, Any]] = [claim]
    for service, port in ports.items():
        manifests += _deployment(topology, service, port, ports)
    return manifests


def postgres_manifests() -> list[dict[str, Any]]:
    """A single PostgreSQL for the county (a managed one works as well: point DATABASE_URL at it)."""
    labels = {"app.kubernetes.io/name": "postgres"}
    probe = {"exec": {"command": ["pg_isready", "-U", "fengqiao", "-d", "fengqiao"]}}
    return [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "postgres", "labels": labels},
            "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "postgres", "port": 5432}]},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "postgres", "labels": labels},
            "spec": {
                "serviceName": "postgres",
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [
                            {
                                "name": "postgres",
                                "image": "postgres:17",
                                "env": [
                                    {"name": "POSTGRES_USER", "value": "fengqiao"},
                                    {"name": "POSTGRES_DB", "value": "fengqiao"},
                                    _secret("POSTGRES_PASSWORD", "postgres-password"),
                                    {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                                ],
                                "ports": [{"name": "postgres", "containerPort": 5432}],
                                "readinessProbe": {**probe, "periodSeconds": 5},
                                "livenessProbe": {**probe, "periodSeconds": 20},
                                "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
                            }
                        ]
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}},
                    }
                ],
            },
        },
    ]


def kustomization(topology: Topology, *, version: str) -> dict[str, Any]:
    county = topology.county
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["namespace.yaml", "postgres.yaml", "county.yaml"],
        "labels": [
            {
                "pairs": {"app.kubernetes.io/part-of": "fengqiao", "fengqiao.io/county": county.code},
                "includeSelectors": False,
            }
        ],
        "commonAnnotations": {"fengqiao.io/county-name": county.name},
        "configMapGenerator": [{"name": "fengqiao-topology", "files": ["topology.yaml"]}],
        # `make image` builds fengqiao:<version>; push it to the cluster's registry and name it here
        "images": [{"name": IMAGE, "newName": "fengqiao", "newTag": version}],
    }


def render(topology: Topology, out: Path, *, version: str) -> list[Path]:
    """Write the county's kustomization into ``out`` (made if missing); returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    header = HEADER.format(name=topology.name)
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    documents = {
        "kustomization.yaml": [kustomization(topology, version=version)],
        "namespace.yaml": [namespace],
        "postgres.yaml": postgres_manifests(),
        "county.yaml": county_manifests(topology),
    }
    written = []
    for name, docs in documents.items():
        path = out / name
        path.write_text(header + yaml.safe_dump_all(docs, allow_unicode=True, sort_keys=False), encoding="utf-8")
        written.append(path)
    dump_topology(topology, out / "topology.yaml")
    written.append(out / "topology.yaml")
    return written
