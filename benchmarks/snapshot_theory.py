"""Snapshot of ``solve()`` outputs on a fixed set of datasets, to show that numbers stay the same.

``python benchmarks/snapshot_theory.py save OUT.npz`` writes ``W_svm``, ``W_fin`` and each solve's
status (or the error class) for: the paper settings (seeds 0-4), ``make_dataset`` cyclic and acyclic
seeds 0-20, one-hot and orthonormal token-space cases (both ``method="tokenspace"`` and
``method="dense"``), K > d random embeddings, and every norm of :mod:`attnmech.theory.norms`.
``python benchmarks/snapshot_theory.py compare A.npz B.npz`` prints the largest difference per
group.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np


def _cases():
    from attnmech import Dataset, make_dataset

    for seed in range(21):
        yield (
            f"cyc-6-4-6-8-s{seed}",
            make_dataset(6, 4, 6, 8, graph="cyclic", seed=seed),
            "fro",
            "auto",
        )
        yield (
            f"acyc-4-6-8-8-s{seed}",
            make_dataset(4, 6, 8, 8, graph="acyclic", seed=seed),
            "fro",
            "auto",
        )
    for seed in range(5):
        yield (
            f"cyc-10-6-8-8-s{seed}",
            make_dataset(10, 6, 8, 8, graph="cyclic", seed=seed),
            "fro",
            "auto",
        )
        yield f"Kgtd-8-5-8-5-s{seed}", make_dataset(8, 5, 8, 5, seed=seed), "fro", "auto"
        ds = make_dataset(12, 5, 10, 10, graph="cyclic", embeddings="ortho", seed=seed)
        yield f"ortho-tok-s{seed}", ds, "fro", "tokenspace"
        yield f"ortho-dense-s{seed}", ds, "fro", "dense"
        oh = Dataset(ds.sequences, ds.labels, "onehot")
        yield f"onehot-tok-s{seed}", oh, "fro", "tokenspace"
        yield f"onehot-dense-s{seed}", Dataset(ds.sequences, ds.labels, np.eye(10)), "fro", "dense"
    for seed in range(3):
        ds = make_dataset(5, 4, 5, 6, graph="cyclic", seed=seed)
        for norm in ("nuclear", "spectral", "l1", "linf", "lp:3"):
            yield f"norm-{norm}-s{seed}", ds, norm, "auto"


def save(path: str) -> None:
    from attnmech import solve

    out: dict[str, np.ndarray] = {}
    for name, ds, norm, method in _cases():
        warnings.simplefilter("ignore")
        try:
            th = solve(ds, svm_norm=norm, method=method)
            out[f"{name}|W_svm"] = np.asarray(th.W_svm)
            out[f"{name}|W_fin"] = np.asarray(th.W_fin)
            out[f"{name}|status"] = np.array(f"{th.svm.status.value}/{th.finite.status.value}")
        except Exception as exc:  # noqa: BLE001 - the error class is part of the snapshot
            out[f"{name}|status"] = np.array(f"error:{type(exc).__name__}")
        print(name, str(out[f"{name}|status"]), flush=True)
    from attnmech import build_priority_graphs, make_dataset
    from attnmech.theory.svm import solve_nuclear_svm

    for seed in range(3):  # the old nuclear entry point (a deprecation shim after the merge)
        ds = make_dataset(5, 4, 5, 6, graph="cyclic", seed=seed)
        res = solve_nuclear_svm(build_priority_graphs(ds), ds.embeddings)
        out[f"nucsvm-s{seed}|W_svm"] = np.asarray(res.W_svm)
        out[f"nucsvm-s{seed}|status"] = np.array(f"{res.status.value}/unique={res.unique}")
    np.savez(path, **out)


def compare(a_path: str, b_path: str) -> None:
    a, b = np.load(a_path), np.load(b_path)
    groups: dict[str, float] = {}
    changed = []
    for key in sorted(set(a.files) | set(b.files)):
        if key not in a.files or key not in b.files:
            changed.append(f"{key}: only in {'A' if key in a.files else 'B'}")
            continue
        group = key.split("|")[0].rsplit("-s", 1)[0] + "|" + key.split("|")[1]
        if key.endswith("status"):
            if str(a[key]) != str(b[key]):
                changed.append(f"{key}: {a[key]} -> {b[key]}")
            continue
        diff = float(np.abs(a[key] - b[key]).max(initial=0.0))
        groups[group] = max(groups.get(group, 0.0), diff)
    for group, diff in groups.items():
        print(f"{group:32s} max |diff| = {diff:.3e}")
    print("overall max |diff| =", f"{max(groups.values(), default=0.0):.3e}")
    print("status changes:", changed or "none")


if __name__ == "__main__":
    if sys.argv[1] == "save":
        save(sys.argv[2])
    else:
        compare(sys.argv[2], sys.argv[3])
