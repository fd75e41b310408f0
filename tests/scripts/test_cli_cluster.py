"""``budgetgym train --seeds ... --address`` against a real Ray cluster started with ``ray
start --head`` in a subprocess: the seeds run as Ray tasks and the aggregate report is today's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import yaml

from budgetgym.scripts.cli import main
from tests.agents.tiny_runs import cli, tiny, write_config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A one-machine Ray cluster with 2 CPUs on its own ports, with token authentication as a
    real cluster has it (the token in the environment of the head and of the commands);
    stopped by killing the process group it was started in (its Ray processes)."""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN", uuid.uuid4().hex + uuid.uuid4().hex)
    port = free_port()
    ports = ["--port", str(port), "--ray-client-server-port", str(free_port()),
             "--dashboard-agent-listen-port", str(free_port()),
             "--metrics-export-port", str(free_port()),
             "--runtime-env-agent-port", str(free_port())]  # fmt: skip
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         "--num-cpus", "2", "--node-ip-address", "127.0.0.1", "--include-dashboard", "false",
         "--disable-usage-stats", *ports],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:  # the head answers once its GCS listens
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        if head.poll() is not None or time.monotonic() > deadline:
            os.killpg(head.pid, signal.SIGKILL)
            pytest.fail(f"ray start --head did not come up:\n{head.communicate()[0]}")
        time.sleep(0.2)
    try:
        yield address
    finally:  # SIGTERM would drain the node for 30 s first
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        # What `ray stop` would clean: the address file that names this head as the current one.
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


@pytest.mark.slow
def test_seeds_run_as_ray_tasks_on_a_cluster(tmp_path: Path, ray_head: str) -> None:
    config = write_config(tmp_path, tiny())
    proc = cli("train", "--config", str(config), "--seeds", "0", "1", "--address", ray_head,
               "--run-dir", "seeds", "--no-progress", cwd=tmp_path, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"the Ray cluster at {ray_head} (2 CPUs)" in proc.stdout
    root = tmp_path / "seeds"
    summary = json.loads((root / "aggregate.json").read_text())
    assert [Path(run).name for run in summary["runs"]] == ["seed_0", "seed_1"]
    finals = [
        json.loads((root / f"seed_{s}" / "evaluations.jsonl").read_text().splitlines()[-1])
        for s in (0, 1)
    ]
    assert [f["num_timesteps"] for f in finals] == [192, 192]
    gmv_mean, _ = summary["validation"]["gmv"]
    assert gmv_mean == pytest.approx((finals[0]["gmv"] + finals[1]["gmv"]) / 2)
    seeds = [yaml.safe_load((root / f"seed_{s}" / "config.yaml").read_text())["seed"]
             for s in (0, 1)]  # fmt: skip
    assert seeds == [0, 1]
    assert "Aggregate over 2 seeds" in (root / "aggregate.md").read_text()
    assert (root / "learning_curves.png").is_file()
    # The seeds trained in the cluster's worker processes, not in the command's.
    for s in (0, 1):
        holder = json.loads((root / f"seed_{s}" / ".lock").read_text())["command"]
        assert "budgetgym.scripts.cli" not in holder and "cli.py" not in holder, holder


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seeds", "0", "1", "--cpus", "2"],
         "--cpus sizes the Ray started inside the command: add --address local."),
        (["--address", "auto"], "--address and --cpus run --seeds on Ray; give --seeds."),
        (["--seeds", "0", "1", "--address", "auto", "--workers", "2"],
         "--workers sets local processes"),
    ],
)  # fmt: skip
def test_cluster_flags_are_checked(tmp_path: Path, capsys, flags: list[str], message: str) -> None:
    config = write_config(tmp_path, tiny())
    assert main(["train", "--config", str(config), *flags]) == 2
    assert message in " ".join(capsys.readouterr().out.split())
