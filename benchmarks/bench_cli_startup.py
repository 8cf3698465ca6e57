"""Start-up time of the command line: ``attnmech --help`` against references measured in the same
run (median of several runs, each a fresh interpreter).

References: ``python -c pass`` (the interpreter alone) and ``python -c "import typer"`` (the CLI
framework alone), plus ``import attnmech`` + ``attnmech.solve`` (the lazy core) and
``import torch`` (what a command that trains pays on top). Run from the repository root:

    python benchmarks/bench_cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

CASES = [
    ("python -c pass", ["-c", "pass"]),
    ("import typer", ["-c", "import typer"]),
    ("python -m attnmech --help", ["-m", "attnmech", "--help"]),
    ("import attnmech; attnmech.solve", ["-c", "import attnmech; attnmech.solve"]),
    ("import torch", ["-c", "import torch"]),
]


def _time(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    times: dict[str, list[float]] = {name: [] for name, _ in CASES}
    for _ in range(args.runs):  # interleaved, so that machine load hits every case alike
        for name, case in CASES:
            times[name].append(_time(case, env))
    print(f"{'command':<36} {'median s':>9} {'min s':>7} {'max s':>7}   ({args.runs} runs)")
    for name, values in times.items():
        print(
            f"{name:<36} {statistics.median(values):>9.3f} {min(values):>7.3f} {max(values):>7.3f}"
        )


if __name__ == "__main__":
    main()
