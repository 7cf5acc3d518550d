"""The topology of a county: its nodes, who is whose parent, neighbours and addresses.

One YAML file describes a county (``deploy/topology/*.yaml``); everything else — node
settings, the demo, later the nats-server configs — is derived from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from fengqiao.divisions import Tier, is_within, parent_code, tier_of
from fengqiao.errors import InvalidArgument, NotFound


def jetstream_domain(code: str) -> str:
    """A node's JetStream domain in the leaf topology (no ``.``, ``*`` or ``>`` allowed in it)."""
    return f"fq{code}"


@dataclasses.dataclass(frozen=True)
class Limits:
    """How much a node's nats-server may hold: its upward buffer (the events stream, which
    the parent sources) and its JetStream store. A full buffer refuses new events, which then
    wait in the outbox; ``buffer_age_s`` must outlast the longest outage to be ridden out."""

    buffer_bytes: int = 1 << 30
    buffer_msgs: int = -1
    buffer_age_s: int = 90 * 86400
    store_bytes: int = 8 << 30

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class NatsSpec:
    """A node's own nats-server(s) in the leaf topology: ports on the node's host.

    ``servers`` > 1 (the county) is a cluster; server ``i`` uses each port plus ``i``.
    ``upstream`` lists the URLs this node's leaf connection dials (its parent's leafnode
    listeners as reachable from here); empty means the parent's host and ``leaf_port``s.
    """

    client_port: int = 4222
    leaf_port: int = 7422
    monitor_port: int = 8222
    cluster_port: int = 6222
    servers: int = 1
    upstream: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "upstream": list(self.upstream)}


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One center (综治中心/站) of the county."""

    code: str
    name: str
    host: str = "127.0.0.1"
    grpc_port: int = 0
    http_port: int = 0
    metrics_port: int = 0  # /metrics (Prometheus); 0: any free port
    neighbours: tuple[str, ...] = ()
    nats: NatsSpec = NatsSpec()
    limits: Limits = Limits()

    @property
    def tier(self) -> Tier:
        return tier_of(self.code)

    @property
    def parent(self) -> str | None:
        return parent_code(self.code)

    @property
    def grpc_address(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def http_address(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def metrics_url(self) -> str | None:
        """Where Prometheus scrapes the node, when the topology fixes its port."""
        return f"http://{self.host}:{self.metrics_port}/metrics" if self.metrics_port else None


@dataclasses.dataclass(frozen=True)
class Topology:
    """A county and every node below it."""

    name: str
    nodes: tuple[NodeSpec, ...]
    sample_codes: bool = False
    leafnodes: bool = False  # each node its own nats-server, a JetStream leaf of its parent

    def __post_init__(self) -> None:
        codes = [n.code for n in self.nodes]
        if len(set(codes)) != len(codes):
            raise InvalidArgument("nodes", "拓扑文件中存在重复的行政区划代码")
        counties = [n for n in self.nodes if n.tier is Tier.COUNTY]
        if len(counties) != 1:
            raise InvalidArgument("nodes", "拓扑文件必须恰好包含一个县级节点")
        for node in self.nodes:
            if node.parent is not None and node.parent not in codes:
                raise InvalidArgument("nodes", f"节点 {node.code} 的上级 {node.parent} 不在拓扑文件中")

    @property
    def county(self) -> NodeSpec:
        return next(n for n in self.nodes if n.tier is Tier.COUNTY)

    def node(self, code: str) -> NodeSpec:
        for node in self.nodes:
            if node.code == code:
                return node
        raise NotFound(f"行政区划代码 {code} 不在本县拓扑中")

    def knows(self, code: str) -> bool:
        return any(n.code == code for n in self.nodes)

    def children(self, code: str) -> list[NodeSpec]:
        return [n for n in self.nodes if n.parent == code]

    def subtree(self, code: str) -> Iterator[NodeSpec]:
        """The node and every node below it, parents first."""
        for node in sorted(self.nodes, key=lambda n: (n.tier, n.code)):
            if is_within(node.code, code):
                yield node

    def ancestors(self, code: str) -> list[NodeSpec]:
        """The chain above a node, nearest first."""
        chain = []
        parent = parent_code(code)
        while parent is not None:
            chain.append(self.node(parent))
            parent = parent_code(parent)
        return chain

    def with_ports(self, ports: dict[str, tuple[int, int]]) -> Topology:
        """A copy with (grpc_port, http_port) replaced for the codes given."""
        nodes = tuple(
            dataclasses.replace(n, grpc_port=ports[n.code][0], http_port=ports[n.code][1]) if n.code in ports else n
            for n in self.nodes
        )
        return dataclasses.replace(self, nodes=nodes)

    def domain(self, code: str) -> str | None:
        """The JetStream domain of a node's server: its own in the leaf topology, else none."""
        return jetstream_domain(code) if self.leafnodes else None

    def to_dict(self) -> dict[str, Any]:
        nodes = []
        for n in self.nodes:
            item: dict[str, Any] = {
                "code": n.code,
                "name": n.name,
                "host": n.host,
                "grpc_port": n.grpc_port,
                "http_port": n.http_port,
                "metrics_port": n.metrics_port,
                "neighbours": list(n.neighbours),
            }
            if self.leafnodes:
                item["nats"] = n.nats.to_dict()
                item["limits"] = n.limits.to_dict()
            nodes.append(item)
        head: dict[str, Any] = {"name": self.name, "sample_codes": self.sample_codes}
        if self.leafnodes:
            head["leafnodes"] = True
        return {**head, "nodes": nodes}


def load_topology(path: Path) -> Topology:
    """Read and validate a topology file."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return topology_from_dict(raw)


def topology_from_dict(raw: dict[str, Any]) -> Topology:
    nodes = tuple(
        NodeSpec(
            code=str(item["code"]),
            name=str(item["name"]),
            host=str(item.get("host", "127.0.0.1")),
            grpc_port=int(item.get("grpc_port", 0)),
            http_port=int(item.get("http_port", 0)),
            metrics_port=int(item.get("metrics_port", 0)),
            neighbours=tuple(str(c) for c in item.get("neighbours", ())),
            nats=_nats_spec(item.get("nats") or {}),
            limits=Limits(**{k: int(v) for k, v in (item.get("limits") or {}).items()}),
        )
        for item in raw["nodes"]
    )
    return Topology(
        name=str(raw["name"]),
        nodes=nodes,
        sample_codes=bool(raw.get("sample_codes", False)),
        leafnodes=bool(raw.get("leafnodes", False)),
    )


def _nats_spec(raw: dict[str, Any]) -> NatsSpec:
    upstream = raw.get("upstream", ())
    fields = {k: int(v) for k, v in raw.items() if k != "upstream"}
    return NatsSpec(**fields, upstream=(upstream,) if isinstance(upstream, str) else tuple(map(str, upstream)))


def dump_topology(topology: Topology, path: Path) -> None:
    path.write_text(yaml.safe_dump(topology.to_dict(), allow_unicode=True, sort_keys=False), encoding="utf-8")
