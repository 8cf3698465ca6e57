"""Sweep operations that protect the results: part files that cannot lie, a memory estimate of
the plan, a bounded connect to a Ray address, and pool workers that end with their driver."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from attnmech.cli import app
from attnmech.errors import FileFormatError, InvalidParameterError
from attnmech.studies.sweeps import load_results, parse_sweep_spec, run_sweep
from attnmech.studies.sweeps.store import SweepStore, part_header, rows_to_csv

REPO = Path(__file__).resolve().parents[1]

SMALL = """
[sweep]
name = "guard"
seed = 5
trials = 2
batch_trials = 2
metrics = ["loss", "norm"]

[fixed]
T = 3
K = 4
d = 4
steps = 6
lr = 0.1

[axes]
n = [3, 4]
optimizer = ["gd", "ngd"]
"""


@pytest.fixture(scope="module")
def done_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("guard") / "s"
    run_sweep(parse_sweep_spec(SMALL), out, workers=1)
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".attnmech.lock"))
    return dst


def _one_line_error(argv: list[str]) -> str:
    result = CliRunner().invoke(app, [str(a) for a in argv])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


# --------------------------------------------------------------------------- part files
def test_parts_carry_task_fingerprint_and_checksum(done_sweep):
    parts = sorted((done_sweep / "parts").glob("*.csv"))
    assert len(parts) == 4
    for part in parts:
        first = part.read_text().splitlines()[0]
        assert first.startswith(f"# attnmech-sweep-part-v1 task={part.stem} fingerprint=")
        assert " sha256=" in first
    table = load_results(done_sweep, prefer_parts=True)
    assert len(table) == 8 and sorted(zip(table["cell"], table["trial"], strict=True)) == [
        (c, t) for c in range(4) for t in range(2)
    ]


def test_an_edited_part_is_refused_on_resume_and_on_reading(done_sweep, tmp_path):
    copy = _copy(done_sweep, tmp_path / "c")
    part = sorted((copy / "parts").glob("*.csv"))[1]
    lines = part.read_text().splitlines(keepends=True)
    header = lines[1].rstrip("\n").split(",")
    column = header.index("loss_value")
    row = lines[2].split(",")
    row[column] = repr(float(row[column]) * 0.5)  # one number edited
    lines[2] = ",".join(row)
    part.write_text("".join(lines))
    with pytest.raises(FileFormatError, match="do not match its checksum") as info:
        run_sweep(parse_sweep_spec(SMALL), copy, workers=1, resume=True)
    assert part.name in str(info.value)
    with pytest.raises(FileFormatError, match=part.name):
        load_results(copy, prefer_parts=True)
    (copy / "results.csv").unlink()
    with pytest.raises(FileFormatError, match=part.name):  # assembling results.csv
        SweepStore(copy).consolidate()
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(SMALL)
    line = _one_line_error(["sweep", spec_file, "--out", copy, "--resume"])
    assert part.name in line and "checksum" in line


def test_a_stray_copy_is_refused(done_sweep, tmp_path):
    copy = _copy(done_sweep, tmp_path / "c")
    part = sorted((copy / "parts").glob("*.csv"))[0]
    stray = copy / "parts" / "0000000000000000.csv"
    stray.write_bytes(part.read_bytes())
    with pytest.raises(FileFormatError, match="stray copy") as info:
        run_sweep(parse_sweep_spec(SMALL), copy, workers=1, resume=True)
    assert stray.name in str(info.value)
    with pytest.raises(FileFormatError, match=stray.name):
        load_results(copy, prefer_parts=True)


def test_a_duplicated_part_with_a_valid_header_is_refused(done_sweep, tmp_path):
    """A forged part that checks out on its own (its name, checksum and fingerprint agree) but
    repeats another part's trials: refused as a duplicate, naming both files."""
    copy = _copy(done_sweep, tmp_path / "c")
    part = sorted((copy / "parts").glob("*.csv"))[0]
    body = part.read_text().partition("\n")[2]
    digest = SweepStore(copy).manifest()["digest"]
    from attnmech.studies.sweeps.store import _units_of

    units = _units_of(part, body)
    name = "ffffffffffffffff"
    (copy / "parts" / f"{name}.csv").write_text(part_header(digest, name, units, body) + body)
    with pytest.raises(FileFormatError, match="duplicated part") as info:
        load_results(copy, prefer_parts=True)
    message = str(info.value)
    assert part.name in message and f"{name}.csv" in message


def test_a_part_of_another_sweep_is_refused(done_sweep, tmp_path):
    other = tmp_path / "other"
    run_sweep(parse_sweep_spec(SMALL.replace("seed = 5", "seed = 6")), other, workers=1)
    copy = _copy(done_sweep, tmp_path / "c")
    foreign = sorted((other / "parts").glob("*.csv"))[0]
    target = copy / "parts" / foreign.name
    target.unlink(missing_ok=True)
    target.write_bytes(foreign.read_bytes())
    with pytest.raises(FileFormatError, match="another sweep|stray|duplicated"):
        load_results(copy, prefer_parts=True)


def test_a_part_without_header_is_refused_in_a_new_folder(done_sweep, tmp_path):
    copy = _copy(done_sweep, tmp_path / "c")
    part = sorted((copy / "parts").glob("*.csv"))[2]
    part.write_text(part.read_text().partition("\n")[2])
    with pytest.raises(FileFormatError, match="no attnmech header"):
        run_sweep(parse_sweep_spec(SMALL), copy, workers=1, resume=True)


def test_a_version_1_folder_is_still_read(done_sweep, tmp_path):
    """Folders written before part headers (manifest format 1) are read, and resumed."""
    import json

    copy = _copy(done_sweep, tmp_path / "c")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format"] = 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    parts = sorted((copy / "parts").glob("*.csv"))
    for part in parts:
        part.write_text(part.read_text().partition("\n")[2])
    parts[0].unlink()
    result = run_sweep(parse_sweep_spec(SMALL), copy, workers=1, resume=True)
    assert (result.tasks_skipped, result.rows) == (3, 2)
    a, b = load_results(copy, prefer_parts=True), load_results(done_sweep)
    oa, ob = np.lexsort((a["trial"], a["cell"])), np.lexsort((b["trial"], b["cell"]))
    np.testing.assert_array_equal(a["loss_value"][oa], b["loss_value"][ob])


def test_rows_to_csv_header_matches_what_is_checked(tmp_path):
    """The header's checksum is of the CSV body exactly as written."""
    body = rows_to_csv(["cell", "trial", "x"], [{"cell": 0, "trial": 0, "x": 0.1}])
    header = part_header("d", "abc", [(0, 0)], body)
    from attnmech.studies.sweeps.store import check_part

    path = tmp_path / "abc.csv"
    assert check_part(path, header + body, "d", legacy_ok=False)[1] == body
    with pytest.raises(FileFormatError, match="fingerprint"):
        check_part(path, header + body, "other digest", legacy_ok=False)


# --------------------------------------------------------------------------- memory of a plan
BIG = """
[sweep]
name = "big"
trials = 4
log_every = 1
metrics = ["loss"]
[fixed]
T = 3
K = 4
d = 4
steps = 100000000
lr = 0.1
[axes]
n = [3, 4]
"""


def test_a_plan_that_does_not_fit_is_refused_before_any_folder(tmp_path):
    spec = parse_sweep_spec(BIG)
    with pytest.raises(InvalidParameterError) as info:
        run_sweep(spec, tmp_path / "big", workers=2, curves=True)
    message = str(info.value)
    assert "needs about" in message and "available" in message
    assert "100,000,001 logged step(s)" in message and "--curves" in message
    assert not (tmp_path / "big").exists()
    # the same plan without curves keeps no history: it fits (only the end is verified)
    from attnmech.studies.sweeps.budget import estimate_plan_bytes
    from attnmech.studies.sweeps.grid import expand_cells, plan_tasks

    cells = expand_cells(spec)
    small = estimate_plan_bytes(spec, cells, plan_tasks(spec, cells), 2)
    assert small.logged_steps == 1 and small.total < 1 << 30
    big = estimate_plan_bytes(spec.replace(curves=True), cells, plan_tasks(spec, cells), 2)
    assert big.logged_steps == 100_000_001
    # 8 trials x 100,000,001 steps x (metrics + step) x 8 bytes, held by a worker
    from attnmech.studies.sweeps.spec import train_metric_names

    history = 8 * 8 * 100_000_001 * (len(train_metric_names()) + 1)
    assert big.task - small.task == history * 100_000_000 // 100_000_001
    assert big.driver == 2 * 2 * history


def test_memory_limit_names_workers_and_batch(tmp_path, monkeypatch):
    monkeypatch.setenv("ATTNMECH_MEMORY_LIMIT_GB", "0.3")
    spec = parse_sweep_spec(SMALL)
    with pytest.raises(InvalidParameterError, match="--workers, sweep.batch_trials"):
        run_sweep(spec, tmp_path / "s", workers=2)
    assert not (tmp_path / "s").exists()
    monkeypatch.setenv("ATTNMECH_MEMORY_LIMIT_GB", "1")
    run_sweep(spec, tmp_path / "s", workers=1)  # one process of 256 MiB fits


def test_search_plan_memory(tmp_path):
    pytest.importorskip("optuna")
    from attnmech.studies.sweeps.search import parse_search_spec, run_search

    text = BIG.replace("lr = 0.1\n", "n = 3\n").replace("n = [3, 4]", "lr = [0.1, 0.2]") + (
        '\n[search]\nobjective = "loss"\ndirection = "minimize"\nsampler = "grid"\n'
        'pruner = "median"\nbudget = 2\n'
    )
    with pytest.raises(InvalidParameterError, match="this search needs about"):
        run_search(parse_search_spec(text), tmp_path / "s")
    assert not (tmp_path / "s").exists()


# --------------------------------------------------------------------------- Ray address
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_address_fails_within_the_timeout(tmp_path):
    address = f"127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(InvalidParameterError, match="cannot reach a Ray cluster") as info:
        run_sweep(
            parse_sweep_spec(SMALL),
            tmp_path / "s",
            backend="ray",
            address=address,
            connect_timeout=0.5,
        )
    assert time.monotonic() - started < 5
    assert address in str(info.value) and "--connect-timeout" in str(info.value)
    assert not (tmp_path / "s").exists()


def test_address_that_is_not_ray_is_refused(tmp_path):
    from attnmech.studies.sweeps.backends import probe_address

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        import threading

        def answer() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with pytest.raises(InvalidParameterError, match="not a Ray cluster"):
            probe_address(f"127.0.0.1:{port}", 2.0)
        thread.join(5)


@pytest.mark.parametrize(
    "address", ["localhost", "127.0.0.1:", "127.0.0.1:99999", "tcp://127.0.0.1:1", ":6379"]
)
def test_malformed_address(address):
    from attnmech.studies.sweeps.backends import probe_address

    with pytest.raises(InvalidParameterError, match="HOST:PORT"):
        probe_address(address, 0.1)


@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), 1e9, "30", True])
def test_connect_timeout_is_checked(value):
    spec = parse_sweep_spec(SMALL)
    with pytest.raises(InvalidParameterError, match="connect_timeout"):
        spec.replace(backend="ray", connect_timeout=value)


def test_cli_dead_address_one_error_line(tmp_path):
    spec_file = tmp_path / "s.toml"
    spec_file.write_text(SMALL)
    started = time.monotonic()
    line = _one_line_error(
        ["sweep", spec_file, "--out", tmp_path / "o", "--backend", "ray", "--address",
         f"127.0.0.1:{_closed_port()}", "--connect-timeout", "0.5"]  # fmt: skip
    )
    assert "cannot reach a Ray cluster" in line and time.monotonic() - started < 10
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- driver killed
def _alive(pid: int) -> bool:
    try:
        import psutil
    except ImportError:  # pragma: no cover - /proc fallback
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z"
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


DRIVER = textwrap.dedent(
    """
    import os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    from attnmech.studies.sweeps.runner import _worker_init

    def pid_then_sleep(_):
        return os.getpid()

    def slow(_):
        time.sleep(120)

    if __name__ == "__main__":
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(2, mp_context=ctx, initializer=_worker_init,
                                   initargs=(os.getpid(),))
        pids = set()
        while len(pids) < 2:
            pids |= set(pool.map(pid_then_sleep, range(8)))
        futures = [pool.submit(slow, i) for i in range(2)]
        print(" ".join(map(str, sorted(pids))), flush=True)
        time.sleep(120)
    """
)


def test_pool_workers_end_with_a_killed_driver(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = proc.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.1)
        assert not any(_alive(p) for p in workers), "a worker outlived its killed driver"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_watcher_thread_ends_an_orphan(tmp_path):
    """The portable fallback alone (no PR_SET_PDEATHSIG): the orphan exits within a second."""
    orphan = tmp_path / "orphan.py"
    orphan.write_text(
        "import os, time\n"
        "import attnmech.studies.sweeps.backends as b\n"
        "b._set_parent_death_signal = lambda: False\n"
        "b.bind_to_driver(period=0.1)\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(60)\n"
    )
    code = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, {str(orphan)!r}], stdout=subprocess.PIPE, "
        "text=True)\n"
        "print(child.stdout.readline().strip(), flush=True)\n"
        "time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        child = int(proc.stdout.readline())
        assert _alive(child)
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(child):
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        if proc.poll() is None:
            proc.kill()


KILL_SPEC = """
[sweep]
name = "kill"
seed = 3
trials = 2
batch_trials = 2
metrics = ["loss", "norm"]

[fixed]
T = 3
K = 4
d = 4
steps = {steps}
lr = 0.1

[axes]
n = [3, 4, 5, 6]
optimizer = ["gd", "ngd"]
"""


@pytest.mark.slow
def test_killed_sweep_driver_leaves_no_worker_and_resumes(tmp_path):
    """A local sweep on 2 workers, its driver SIGKILLed after its first part: no worker is left
    a few seconds later, and --resume completes with every row once."""
    psutil = pytest.importorskip("psutil")
    spec_file = tmp_path / "k.toml"
    spec_file.write_text(KILL_SPEC.format(steps=3000))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "attnmech", "sweep", str(spec_file), "--out", str(out),
         "--workers", "2", "--no-progress"],  # fmt: skip
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list((out / "parts").glob("*.csv")):
            time.sleep(0.1)
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stored = len(list((out / "parts").glob("*.csv")))
    assert 1 <= stored < 4, "the kill must land mid-run"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(c.pid) for c in children):
        time.sleep(0.1)
    assert not [c.pid for c in children if _alive(c.pid)]
    result = run_sweep(parse_sweep_spec(spec_file.read_text()), out, workers=2, resume=True)
    assert result.tasks_skipped == stored
    table = load_results(out)
    units = sorted(zip(table["cell"].tolist(), table["trial"].tolist(), strict=True))
    assert units == [(c, t) for c in range(8) for t in range(2)]  # none lost, none twice


def test_worker_and_retry_bounds() -> None:
    """A worker count no machine serves, or a retry count past the bound, is refused at the
    door (before any process starts); the bounds themselves are accepted."""
    import os

    from attnmech.errors import InvalidParameterError
    from attnmech.studies.sweeps.spec import MAX_RAY_WORKERS, MAX_RETRIES, check_workers

    local_bound = 4 * (os.cpu_count() or 1)
    check_workers(local_bound, "local")
    check_workers(MAX_RAY_WORKERS, "ray")
    for workers, backend in ((local_bound + 1, "local"), (MAX_RAY_WORKERS + 1, "ray"),
                             (10**20, "local"), (0, "local"), (True, "local"), (2.0, "ray")):  # fmt: skip
        with pytest.raises(InvalidParameterError, match="workers"):
            check_workers(workers, backend)
    spec = parse_sweep_spec(SMALL)
    with pytest.raises(InvalidParameterError, match=f"at most {MAX_RETRIES}"):
        dataclasses.replace(spec, retries=MAX_RETRIES + 1)
    assert dataclasses.replace(spec, retries=MAX_RETRIES).retries == MAX_RETRIES
