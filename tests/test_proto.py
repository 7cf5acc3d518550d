"""The protobuf contract under buf (buf.yaml): the current protos pass ``buf lint`` and
``buf breaking`` against the previous release's, and ``buf breaking`` refuses a change that
would break older nodes on the wire (a renumbered field of ``CaseEvent``)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUF = ROOT / "node_modules" / ".bin" / "buf"
PREVIOUS = ROOT / "tests" / "fixtures" / "previous_release_proto"
PREVIOUS_COMMIT = "52a02b47ad55a5a920a272e8383d4e2687ff6f34"
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="module")
def buf() -> Path:
    if not BUF.exists():
        if IN_CI:
            pytest.fail("buf is required in CI (make lint and make test install it with npm ci)")
        pytest.skip("buf not installed (make lint installs it with npm ci)")
    return BUF


def _run(buf: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(buf), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def _scratch(tmp_path: Path) -> Path:
    """A copy of the workspace's protos and buf.yaml to change."""
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    return tmp_path


def test_current_protos_pass_buf_lint(buf: Path) -> None:
    result = _run(buf, "lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_current_protos_do_not_break_the_previous_release(buf: Path) -> None:
    result = _run(buf, "breaking", "--against", str(PREVIOUS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_renumbering_a_field_of_case_event_breaks_the_previous_release(buf: Path, tmp_path: Path) -> None:
    scratch = _scratch(tmp_path)
    case_proto = scratch / "proto" / "fengqiao" / "v1" / "case.proto"
    text = case_proto.read_text(encoding="utf-8")
    renumbered, count = re.subn(r"(message CaseEvent \{.*?int64 seq = )3;", r"\g<1>9;", text, flags=re.S)
    assert count == 1, "CaseEvent.seq = 3 not found: the test must renumber a real field"
    case_proto.write_text(renumbered, encoding="utf-8")

    result = _run(buf, "breaking", "--against", str(PREVIOUS), cwd=scratch)

    assert result.returncode != 0
    assert 'field "3" with name "seq" on message "CaseEvent" was deleted' in result.stdout, result.stdout


def test_the_unchanged_scratch_copy_passes(buf: Path, tmp_path: Path) -> None:
    """The scratch copy itself is sound: only the renumbering above makes buf refuse it."""
    result = _run(buf, "breaking", "--against", str(PREVIOUS), cwd=_scratch(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_previous_release_protos_are_that_commits() -> None:
    """The kept copy is the previous release's protos byte for byte (when the history is here:
    a shallow clone in CI has only the copy)."""
    if subprocess.run(["git", "cat-file", "-e", f"{PREVIOUS_COMMIT}^{{commit}}"], cwd=ROOT, check=False).returncode:
        pytest.skip(f"commit {PREVIOUS_COMMIT[:7]} not in this clone (shallow?)")
    listed = subprocess.run(
        ["git", "ls-tree", "--name-only", "-r", PREVIOUS_COMMIT, "proto/"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    kept = sorted(str(p.relative_to(PREVIOUS)) for p in PREVIOUS.rglob("*.proto"))
    assert kept == sorted(name.removeprefix("proto/") for name in listed)
    for name in listed:
        then = subprocess.run(["git", "show", f"{PREVIOUS_COMMIT}:{name}"], cwd=ROOT, capture_output=True, check=True)
        assert (PREVIOUS / name.removeprefix("proto/")).read_bytes() == then.stdout, name
