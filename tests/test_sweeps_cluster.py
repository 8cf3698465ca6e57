"""A two-node Ray cluster on this machine (``ray.cluster_utils.Cluster``): tasks spread over
both nodes, a worker process killed mid-sweep is retried, the table equals the local backend's,
and a killed driver resumed with ``--resume`` loses and duplicates nothing. Slow (starting two
raylets takes tens of seconds): ``pytest -m slow tests/test_sweeps_cluster.py``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from attnmech.studies.sweeps import load_results, parse_sweep_spec, run_sweep

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

SPEC = """
[sweep]
name = "cluster"
seed = 4
trials = 2
batch_trials = 2
metrics = ["corr_svm", "loss", "feasible"]

[fixed]
T = 3
K = 4
steps = {steps}
lr = 0.1

[axes]
n = [3, 4, 5]
d = [4, 6]
"""


def _same(a, b) -> None:
    assert a.names == b.names
    oa, ob = np.lexsort((a["trial"], a["cell"])), np.lexsort((b["trial"], b["cell"]))
    for name in a.names:
        if name.endswith("time_s"):
            continue
        x, y = a[name][oa], b[name][ob]
        if x.dtype == object:
            assert list(x) == list(y), name
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture(scope="module")
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    env = {"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    os.environ.update(env)  # the raylets (and their workers) inherit it
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


def _kill_one_task_worker(stop: threading.Event, killed: list[int]) -> None:
    """Kill (SIGKILL) the first Ray worker seen running a sweep task (by its process title)."""
    psutil = pytest.importorskip("psutil")

    while not stop.is_set() and not killed:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            if "_attempt_in_worker" in cmd and proc.pid != os.getpid():
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.append(proc.pid)
                except ProcessLookupError:
                    continue
                return
        time.sleep(0.05)


def test_two_nodes_killed_worker_retried_table_equals_local(cluster, tmp_path):
    import ray

    spec = parse_sweep_spec(SPEC.format(steps=1500))
    run_sweep(spec, tmp_path / "local", workers=1)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        stop, killed = threading.Event(), []
        killer = threading.Thread(target=_kill_one_task_worker, args=(stop, killed))
        killer.start()
        try:
            result = run_sweep(spec, tmp_path / "ray", backend="ray", workers=2)
        finally:
            stop.set()
            killer.join()
    finally:
        ray.shutdown()
    assert killed, "no task worker was seen to kill"
    assert result.failed == 0 and result.rows == 12
    _same(load_results(tmp_path / "ray"), load_results(tmp_path / "local"))
    con = sqlite3.connect(tmp_path / "ray" / "results.sqlite")
    nodes = {r[0] for r in con.execute("SELECT node FROM tasks WHERE status = 'done'")}
    con.close()
    assert len(nodes) == 2  # tasks ran on both nodes
    print(f"nodes used: {len(nodes)}; killed worker pid {killed[0]}")


def test_killed_driver_resumes_on_the_cluster(cluster, tmp_path):
    text = SPEC.format(steps=3000)
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(text)
    run_sweep(parse_sweep_spec(text), tmp_path / "local", workers=1)
    out = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    command = [
        sys.executable,
        "-m",
        "attnmech",
        "sweep",
        str(spec_path),
        "--out",
        str(out),
        "--backend",
        "ray",
        "--address",
        cluster.address,
        "--no-progress",
    ]
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and len(list((out / "parts").glob("*.csv"))) < 1:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = len(list((out / "parts").glob("*.csv")))
    assert 1 <= stored < 6, stored
    done = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = load_results(out)
    assert len(table) == 12  # nothing lost, nothing twice
    assert len(set(zip(table["cell"], table["trial"], strict=True))) == 12
    _same(table, load_results(tmp_path / "local"))
