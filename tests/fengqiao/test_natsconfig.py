"""``fengqiao topology render``: configs generated from the topology file, the same ones deployed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from devtools.natsserver import NatsServer
from fengqiao.natsconfig import (
    CHART_CA_FILE,
    LOCAL_USER,
    leaf_permissions,
    leaf_user,
    render,
    server_config,
    to_conf,
    upstream_urls,
)
from fengqiao.security import pki
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


def _chart_config(values: dict[str, Any], *, certs: Path, store: Path, leaf_port: int) -> dict[str, Any]:
    """The nats.conf the official chart makes of ``values`` (the parts these values set), with the
    chart's mount paths moved to ``certs`` and its listeners to loopback: its fixed keys, then
    each block's ``merge``."""
    config = values["config"]
    leaf, jetstream = config["leafnodes"], config["jetstream"]
    tls = {"cert_file": str(certs / "tls.crt"), "key_file": str(certs / "tls.key")}
    tls |= {k: str(certs / "ca.crt") if k == "ca_file" else v for k, v in leaf["tls"]["merge"].items()}
    return {
        "listen": "127.0.0.1:-1",
        "server_name": "nats-0",
        "jetstream": {"store_dir": str(store), **jetstream["merge"]},
        "leafnodes": {"listen": f"127.0.0.1:{leaf_port}", "no_advertise": True, "tls": tls, **leaf["merge"]},
        **config["merge"],
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for(server: NatsServer, text: str, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(text in line for line in server._log):
            return True
        time.sleep(0.05)
    return False


def _wait_for_leaf(monitor: int, timeout_s: float = 10.0) -> bool:
    """True once the server's ``/leafz`` shows a leaf connection."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if httpx.get(f"http://127.0.0.1:{monitor}/leafz", timeout=2).json().get("leafnodes"):
            return True
        time.sleep(0.05)
    return False


def test_the_county_helm_values_verify_and_map_each_towns_certificate_and_fsync_every_write(tmp_path: Path) -> None:
    topology = load_topology(SAMPLE)
    values = yaml.safe_load((REPO / "deploy" / "rendered" / "county-nats-values.yaml").read_text())
    assert values["tlsCA"] == {"enabled": True, "secretName": "fengqiao-nats-leaf-tls", "key": "ca.crt"}
    leaf_tls = values["config"]["leafnodes"]["tls"]
    assert leaf_tls["enabled"] and leaf_tls["merge"] == {"ca_file": CHART_CA_FILE, "verify_and_map": True}
    assert values["config"]["jetstream"]["merge"]["sync_interval"] == "always"
    merged = values["config"]["merge"]
    assert merged["no_auth_user"] == LOCAL_USER
    users = {u["user"]: u for u in merged["authorization"]["users"]}
    towns = [n.code for n in topology.children(COUNTY)]
    assert set(users) == {LOCAL_USER, *(leaf_user(t) for t in towns)}
    for town in towns:  # each town is a leaf-only user with its own subtree's permissions
        assert users[leaf_user(town)]["allowed_connection_types"] == ["LEAFNODE"]
        assert users[leaf_user(town)]["permissions"] == leaf_permissions(topology, town)
    assert users[LOCAL_USER]["allowed_connection_types"] == ["STANDARD"]

    # A real nats-server runs the configuration these values make: a town's certificate from the
    # county CA connects as its user; a certificate naming no town (a village's) is refused.
    certs = tmp_path / "pki"
    now = dt.datetime.now(dt.UTC)
    pki.init_ca(certs, county=COUNTY, name="测试县", now=now)
    own = pki.issue(certs, code=COUNTY, hosts=["127.0.0.1"], now=now)
    own.cert.rename(certs / "tls.crt")
    own.key.rename(certs / "tls.key")
    leaf_port, monitor = _free_port(), _free_port()
    conf = tmp_path / "county.conf"
    chart = _chart_config(values, certs=certs, store=tmp_path / "js", leaf_port=leaf_port)
    conf.write_text(to_conf({**chart, "http": f"127.0.0.1:{monitor}"}))
    county = NatsServer(store_dir=tmp_path / "js", config=conf).start()
    try:
        for code, connects in ((VILLAGE, False), (TOWN, True)):
            files = pki.issue(certs, code=code, hosts=["127.0.0.1"], now=now)
            remote = {"urls": [f"nats-leaf://127.0.0.1:{leaf_port}"], "tls": {
                "cert_file": str(files.cert), "key_file": str(files.key), "ca_file": str(files.ca)}}  # fmt: skip
            dialer = tmp_path / f"{code}.conf"
            dialer.write_text(to_conf({"listen": "127.0.0.1:-1", "leafnodes": {"remotes": [remote]}}))
            child = NatsServer(store_dir=tmp_path / code, config=dialer).start()
            try:
                if connects:
                    assert _wait_for_leaf(monitor), "\n".join(county._log[-10:])
                else:
                    assert _wait_for(county, "Authentication Failure"), "\n".join(county._log[-10:])
                    assert not _wait_for_leaf(monitor, timeout_s=0.5)
            finally:
                child.stop()
    finally:
        county.stop()
