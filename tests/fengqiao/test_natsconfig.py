"""``fengqiao topology render``: configs generated from the topology file, the same ones deployed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from fengqiao.natsconfig import render, server_config, upstream_urls
from fengqiao.topology import NatsSpec, load_topology
from host.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "deploy" / "topology" / "mudan-sample.yaml"
VILLAGE, TOWN, COUNTY = "371702101001", "371702101", "371702"


def test_the_rendered_configs_in_deploy_are_what_the_sample_topology_renders_today(tmp_path: Path) -> None:
    assert main(["topology", "render", "--topology", str(SAMPLE), "--out", str(tmp_path)]) == 0
    shipped = REPO / "deploy" / "rendered"
    rendered = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert rendered == sorted(p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file())
    for path in rendered:
        assert (tmp_path / path).read_text() == (shipped / path).read_text(), (
            f"deploy/rendered/{path} has drifted: run `fengqiao topology render --out deploy/rendered`"
        )


def test_each_node_has_its_domain_its_parent_as_leaf_remote_and_bounded_storage() -> None:
    topology = load_topology(SAMPLE)
    village = server_config(topology, VILLAGE, state_dir=Path("/s"))
    assert village["jetstream"] == {
        "domain": f"fq{VILLAGE}",
        "store_dir": f"/s/{VILLAGE}/jetstream",
        "max_file_store": topology.node(VILLAGE).limits.store_bytes,
        "sync_interval": "always",
    }
    town = topology.node(TOWN)
    assert village["leafnodes"] == {"remotes": [{"urls": [f"nats-leaf://{town.host}:{town.nats.leaf_port}"]}]}
    assert server_config(topology, TOWN, state_dir=Path("/s"))["leafnodes"]["no_advertise"] is True
    assert "remotes" not in server_config(topology, COUNTY, state_dir=Path("/s"))["leafnodes"]


def test_a_county_cluster_of_three_routes_to_its_peers_and_towns_dial_all_three(tmp_path: Path) -> None:
    topology = load_topology(SAMPLE)
    county = topology.county
    clustered = dataclasses.replace(county, nats=dataclasses.replace(county.nats, servers=3))
    topology = dataclasses.replace(topology, nodes=(clustered, *topology.nodes[1:]))
    second = server_config(topology, COUNTY, state_dir=Path("/s"), index=1)
    assert second["cluster"]["routes"] == [
        f"nats-route://127.0.0.1:{county.nats.cluster_port}",
        f"nats-route://127.0.0.1:{county.nats.cluster_port + 2}",
    ]
    assert "sync_interval" not in second["jetstream"]  # replicated R3 instead
    assert len(upstream_urls(topology, topology.node(TOWN))) == 3
    written = render(topology, tmp_path)
    assert {p.name for p in written if p.parent.name == COUNTY} >= {f"nats-server-{i}.conf" for i in range(3)}
    values = yaml.safe_load((tmp_path / "county-nats-values.yaml").read_text())
    assert values["config"]["jetstream"]["merge"]["domain"] == f"fq{COUNTY}"
    assert values["config"]["cluster"]["replicas"] == 3


def test_an_upstream_in_the_topology_file_replaces_the_parents_address() -> None:
    topology = load_topology(SAMPLE)
    village = topology.node(VILLAGE)
    via = dataclasses.replace(village, nats=NatsSpec(upstream=("nats-leaf://10.8.0.1:7422",)))
    assert upstream_urls(topology, via) == ["nats-leaf://10.8.0.1:7422"]
