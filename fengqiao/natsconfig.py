"""``fengqiao topology render``: every nats-server config and service config of a county.

Rendered from the county's topology file, never written by hand; the tests start their
nats-servers from these same files, so what is deployed is what was tested. Per node:

- ``<code>/nats-server.conf`` (the county with ``servers: 3``: ``nats-server-0.conf`` …): its own
  JetStream domain ``fq<code>``; a leafnode listener for its children (``no_advertise``, so a
  child reaches it only by the address it was given); a leafnode remote to its parent. With a
  TLS directory, each child's leaf connection is its own user, named by its certificate, with
  permissions limited to its own subtree (``leaf_permissions``).
- ``<code>/fengqiao.env``: the node's service settings (``FQ_*``) for ``fengqiao node``.
- ``county-nats-values.yaml``: values for the official NATS Helm chart (the county in Kubernetes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from fengqiao.divisions import (
    down_deliver,
    down_filter,
    down_stream,
    events_stream,
    inbox_prefix,
    subtree_subjects,
    up_deliver,
)
from fengqiao.limits import MAX_PAYLOAD
from fengqiao.security.pki import ORGANIZATION
from fengqiao.topology import NodeSpec, Topology, dump_topology
from fengqiao.topology import jetstream_domain as domain_of

HEADER = "# Rendered by `fengqiao topology render` from the topology of {name}. Do not edit: re-render.\n"


def server_files(spec: NodeSpec) -> list[str]:
    """The config file names of a node's nats-server(s)."""
    if spec.nats.servers == 1:
        return ["nats-server.conf"]
    return [f"nats-server-{i}.conf" for i in range(spec.nats.servers)]


def client_urls(spec: NodeSpec) -> str:
    """The URLs the node's services connect to: its own server(s), on loopback."""
    return ",".join(f"nats://127.0.0.1:{spec.nats.client_port + i}" for i in range(spec.nats.servers))


def upstream_urls(topology: Topology, spec: NodeSpec) -> list[str]:
    """What a node's leaf connection dials: the topology's ``upstream``, else the parent's listeners."""
    if spec.nats.upstream:
        return list(spec.nats.upstream)
    parent = topology.node(spec.parent) if spec.parent else None
    if parent is None:
        return []
    return [f"nats-leaf://{parent.host}:{parent.nats.leaf_port + i}" for i in range(parent.nats.servers)]


LOCAL_USER = "local"
"""Who a client of a node's own server is (on loopback, without credentials: ``no_auth_user``)."""


def leaf_user(code: str) -> str:
    """The user a child's leaf connection is mapped to: its certificate's subject (``fengqiao pki``)."""
    return f"CN={code},O={ORGANIZATION}"


def leaf_permissions(topology: Topology, child: str) -> dict[str, list[str]]:
    """What the parent's server lets ``child``'s leaf connection carry, both ways.

    Verified against nats-server 2.15 (tests/test_leaf_permissions.py): a leaf connection's user
    is read as if the child were a client of the parent — ``publish`` bounds what the child may
    send into the parent's server, ``subscribe`` what the parent's server forwards to the child
    (the interest the child registers outside it is refused). Leafnode users in
    ``leafnodes.authorization`` take no permissions, so the children are users of the server's
    ``authorization`` restricted to ``LEAFNODE`` connections.

    No ``fq.`` subject needs to cross a leaf — stream sourcing carries events on JetStream's own
    subjects — so the child may send only its own subtree's and receive only those and what is
    sent down to it. The rest is what cross-domain sourcing and link-state reads need:

    - upward, the parent sources the child's events stream through ``$JS.fq<child>.API`` (any call
      into the child's own domain); the child answers on the parent's reply subjects and delivers
      on the source consumer's ``$JS.S.*``; the parent answers flow control on ``$JS.FC.<stream>``;
    - downward, the child creates a consumer on the parent's down stream *with its own filter
      only* (the filter is part of the API subject, and the server checks it against the
      request), reads the parent's streams' info, and answers flow control;
    - replies: ``$JSC.R.*`` (the servers' own requests) and ``_INBOX.>`` (the services').
    """
    parent = topology.node(child).parent
    if parent is None:
        raise ValueError(f"{child} has no parent")
    up = f"$JS.fq{parent}.API"
    publish = [
        subtree_subjects(child),
        f"{up}.STREAM.INFO.{events_stream(parent)}",
        f"{up}.STREAM.INFO.{down_stream(parent)}",
        f"{up}.CONSUMER.CREATE.{down_stream(parent)}.*.{down_filter(child)}",
        f"{up}.CONSUMER.DELETE.{down_stream(parent)}.*",
        f"$JS.FC.{down_stream(parent)}.>",
        f"{up_deliver(child)}.>",  # its events, delivered to the parent's source of them
        f"{inbox_prefix(parent)}.>",  # answers to the parent's services' calls into its domain
        "$JSC.R.*",  # answers to the servers' own API calls
    ]
    subscribe = [
        subtree_subjects(child),
        down_filter(child),
        f"$JS.fq{child}.API.>",
        f"$JS.FC.{events_stream(child)}.>",
        f"{down_deliver(child)}.>",  # what its parent sends down for it, delivered to its source
        f"{inbox_prefix(child)}.>",  # answers to its own services' calls into the parent's domain
        "$JSC.R.*",
    ]
    return {"publish": publish, "subscribe": subscribe}


def authorization(topology: Topology, code: str) -> dict[str, Any]:
    """The server's users: its own services (loopback, no credentials) and one per child."""
    users: list[dict[str, Any]] = [{"user": LOCAL_USER, "allowed_connection_types": ["STANDARD"]}]
    for child in topology.children(code):
        users.append(
            {
                "user": leaf_user(child.code),
                "allowed_connection_types": ["LEAFNODE"],
                "permissions": leaf_permissions(topology, child.code),
            }
        )
    return {"users": users}


def _tls(tls_dir: Path | None, code: str, *, verify: bool) -> dict[str, Any] | None:
    if tls_dir is None:
        return None
    block: dict[str, Any] = {
        "cert_file": str(tls_dir / f"{code}.crt"),
        "key_file": str(tls_dir / f"{code}.key"),
        "ca_file": str(tls_dir / "ca.crt"),
    }
    if verify:  # and take the client's user from its certificate
        block["verify_and_map"] = True
    return block


def server_config(
    topology: Topology, code: str, *, state_dir: Path, index: int = 0, tls_dir: Path | None = None
) -> dict[str, Any]:
    """The nats-server configuration of server ``index`` of node ``code``, as a dict."""
    spec = topology.node(code)
    nats = spec.nats
    clustered = nats.servers > 1
    store = state_dir / code / (f"jetstream-{index}" if clustered else "jetstream")
    jetstream: dict[str, Any] = {
        "domain": domain_of(code),
        "store_dir": str(store),
        "max_file_store": spec.limits.store_bytes,
    }
    if not clustered:  # a lone server has no replicas to recover from: every write is fsynced
        jetstream["sync_interval"] = "always"
    config: dict[str, Any] = {
        "server_name": f"{domain_of(code)}-{index}",
        "listen": f"127.0.0.1:{nats.client_port + index}",
        "http": f"127.0.0.1:{nats.monitor_port + index}",
        "max_payload": MAX_PAYLOAD,  # the same at every server: a leaf link carries what its ends accept
        "jetstream": jetstream,
    }
    leafnodes: dict[str, Any] = {}
    if topology.children(code):
        leafnodes.update(listen=f"{spec.host}:{nats.leaf_port + index}", no_advertise=True)
        if tls := _tls(tls_dir, code, verify=True):
            leafnodes["tls"] = tls
            config["no_auth_user"] = LOCAL_USER
            config["authorization"] = authorization(topology, code)
    if spec.parent is not None:
        remote: dict[str, Any] = {"urls": upstream_urls(topology, spec)}
        if tls := _tls(tls_dir, code, verify=False):
            remote["tls"] = tls
        leafnodes["remotes"] = [remote]
    if leafnodes:
        config["leafnodes"] = leafnodes
    if clustered:
        routes = [f"nats-route://{spec.host}:{nats.cluster_port + i}" for i in range(nats.servers) if i != index]
        config["cluster"] = {
            "name": domain_of(code),
            "listen": f"{spec.host}:{nats.cluster_port + index}",
            "no_advertise": True,
            "routes": routes,
        }
    return config


def service_env(topology: Topology, code: str, *, state_dir: Path, config_dir: Path) -> str:
    """The node's ``fengqiao node`` settings; secrets come from a separate, unrendered file."""
    spec = topology.node(code)
    lines = [
        f"FQ_NODE_CODE={code}",
        f"FQ_TOPOLOGY_FILE={config_dir / 'topology.yaml'}",
        f"FQ_NATS_URL={client_urls(spec)}",
        f"FQ_DATA_DIR={state_dir / code / 'data'}",
    ]
    return HEADER.format(name=topology.name) + "\n".join(lines) + "\n"


LEAF_TLS_SECRET = "fengqiao-nats-leaf-tls"  # tls.crt, tls.key and ca.crt (deploy/README.md)
CHART_CA_FILE = "/etc/nats-ca-cert/ca.crt"  # where the chart mounts ``tlsCA`` (its default dir)


def helm_values(topology: Topology) -> dict[str, Any]:
    """Values for the official NATS chart (nats-io/k8s ``nats`` 1.x) for the county's cluster.

    As the county's own servers are configured (``server_config``): the leafnode listener checks
    each town's certificate against the county CA (``tlsCA``) and maps it to its user
    (``verify_and_map``); each town is a user allowed only leaf connections, with the
    permissions of its subtree; the county's services are the no-credentials local user; and
    every JetStream write is fsynced (``sync_interval: always``), not every two minutes."""
    county = topology.county
    return {
        "config": {
            "cluster": {"enabled": True, "replicas": max(county.nats.servers, 3)},
            "jetstream": {
                "enabled": True,
                "fileStore": {"pvc": {"size": f"{max(county.limits.store_bytes >> 30, 1)}Gi"}},
                "merge": {"domain": domain_of(county.code), "sync_interval": "always"},
            },
            "leafnodes": {
                "enabled": True,
                "port": county.nats.leaf_port,
                "tls": {
                    "enabled": True,
                    "secretName": LEAF_TLS_SECRET,
                    "merge": {"ca_file": CHART_CA_FILE, "verify_and_map": True},
                },
                "merge": {"no_advertise": True},
            },
            "monitor": {"enabled": True, "port": county.nats.monitor_port},
            "merge": {
                "max_payload": MAX_PAYLOAD,
                "no_auth_user": LOCAL_USER,
                "authorization": authorization(topology, county.code),
            },
        },
        # The county CA that signed every town's certificate, mounted at CHART_CA_FILE.
        "tlsCA": {"enabled": True, "secretName": LEAF_TLS_SECRET, "key": "ca.crt"},
        # Towns dial the leafnode port from outside the cluster.
        "service": {"ports": {"leafnodes": {"enabled": True}}, "merge": {"spec": {"type": "LoadBalancer"}}},
    }


def render(
    topology: Topology,
    out: Path,
    *,
    state_dir: Path = Path("/var/lib/fengqiao"),
    config_dir: Path = Path("/etc/fengqiao"),
    tls_dir: Path | None = None,
) -> list[Path]:
    """Write every node's configs under ``out`` (plus the topology and the Helm values)."""
    if not topology.leafnodes:
        raise ValueError("the topology does not declare `leafnodes: true`")
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "topology.yaml"]
    dump_topology(topology, written[0])
    for spec in topology.nodes:
        node_dir = out / spec.code
        node_dir.mkdir(exist_ok=True)
        for index, name in enumerate(server_files(spec)):
            config = server_config(topology, spec.code, state_dir=state_dir, index=index, tls_dir=tls_dir)
            (node_dir / name).write_text(HEADER.format(name=topology.name) + to_conf(config), encoding="utf-8")
            written.append(node_dir / name)
        env = node_dir / "fengqiao.env"
        env.write_text(service_env(topology, spec.code, state_dir=state_dir, config_dir=config_dir), encoding="utf-8")
        written.append(env)
    values = out / "county-nats-values.yaml"
    values.write_text(HEADER.format(name=topology.name) + yaml.safe_dump(helm_values(topology), sort_keys=False))
    written.append(values)
    return written


def to_conf(value: dict[str, Any], indent: int = 0) -> str:
    """The nats-server config syntax for ``value`` (strings quoted as JSON, which it accepts)."""
    pad = "  " * indent
    lines = []
    for key, item in value.items():
        if isinstance(item, dict):
            lines.append(f"{pad}{key} {{\n{to_conf(item, indent + 1)}{pad}}}")
        elif isinstance(item, list) and item and isinstance(item[0], dict):
            blocks = "".join(f"{pad}  {{\n{to_conf(i, indent + 2)}{pad}  }}\n" for i in item)
            lines.append(f"{pad}{key} [\n{blocks}{pad}]")
        else:
            lines.append(f"{pad}{key}: {json.dumps(item, ensure_ascii=False)}")
    return "".join(line + "\n" for line in lines)
