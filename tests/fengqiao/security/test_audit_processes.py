"""Two processes of one SQLite node appending to the audit trail at once (the county's services,
or a village's node and ``fengqiao user`` at the console) must not fork the chain: each append
takes the write lock before it reads the head."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from fengqiao import migrations
from fengqiao.db import Database
from fengqiao.security import audit

DURATION_S = 25.0
WORKER = """
import datetime as dt, sys, time
from fengqiao.db import Database
from fengqiao.security import audit
url, name, start, until = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
db = Database(url)
while time.time() < start:
    time.sleep(0.01)
n = 0
while time.time() < until:
    entry = audit.Entry(dt.datetime.now(dt.UTC), "371702101001", name, "pii.read", f"case-{n}", {"view": "case"})
    db.transaction(lambda s: audit.record(s, [entry]))
    n += 1
db.close()
print(n)
"""


@pytest.mark.slow
def test_two_processes_appending_for_a_while_leave_a_chain_that_verifies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'village.db'}"
    migrations.upgrade(url)
    start = time.time() + 3.0  # both interpreters loaded before either writes
    until = start + DURATION_S
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, name, str(start), str(until)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("进程甲", "进程乙")
    ]
    written = []
    for worker in workers:
        out, err = worker.communicate(timeout=DURATION_S + 60)
        assert worker.returncode == 0, err
        written.append(int(out.strip()))
    assert all(n > 50 for n in written), written  # both really wrote, side by side

    db = Database(url)
    try:
        count, broken = db.transaction(audit.verify)
    finally:
        db.close()
    assert broken is None, broken
    assert count == sum(written)
    result = subprocess.run(
        [sys.executable, "-m", "host.cli", "audit", "verify", "--database", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and f"审计链完整：共 {count} 条记录" in result.stdout, result.stdout
