"""Compare two results.json files number by number.

Walks both JSON trees in parallel and reports how many numbers were compared, how many are
identical, the largest absolute difference (and where), plus the keys present on one side only.
Keys whose values are timings or machine facts can be skipped with ``--skip`` (substring match on
the dotted path). ``--rename old=new`` maps a top-level key of the first file to the second's.

Usage::

    python benchmarks/compare_results.py BEFORE.json AFTER.json [--skip wall_time] [--rename a=b]
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def walk(a: Any, b: Any, path: str, out: dict[str, Any], skip: list[str]) -> None:
    """Compare ``a`` and ``b`` recursively, collecting into ``out``."""
    if any(s in path for s in skip):
        out["skipped"] += 1
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a:
                out["only_after"].append(sub)
            elif key not in b:
                out["only_before"].append(sub)
            else:
                walk(a[key], b[key], sub, out, skip)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out["length_changed"].append(f"{path}: {len(a)} -> {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            walk(x, y, f"{path}[{i}]", out, skip)
        return
    numeric = (int, float)
    if isinstance(a, numeric) and isinstance(b, numeric) and not isinstance(a, bool):
        out["compared"] += 1
        if a == b:
            out["identical"] += 1
            return
        diff = abs(float(a) - float(b))
        rel = diff / max(abs(float(a)), abs(float(b)), 1e-300)
        out["changed"].append((path, a, b, diff, rel))
        return
    if a is None and b is None:
        return
    if a != b:
        out["other_changed"].append(f"{path}: {a!r} -> {b!r}")


def main() -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--skip", action="append", default=[])
    parser.add_argument("--rename", action="append", default=[])
    parser.add_argument("--show", type=int, default=15)
    args = parser.parse_args()
    before = json.load(open(args.before, encoding="utf-8"))
    after = json.load(open(args.after, encoding="utf-8"))
    for pair in args.rename:
        old, new = pair.split("=")
        if old in before:
            before[new] = before.pop(old)
    out: dict[str, Any] = {
        "compared": 0,
        "identical": 0,
        "skipped": 0,
        "changed": [],
        "other_changed": [],
        "only_before": [],
        "only_after": [],
        "length_changed": [],
    }
    walk(before, after, "", out, args.skip)
    changed = sorted(out["changed"], key=lambda r: -r[3])
    print(f"numbers compared: {out['compared']}, identical: {out['identical']}, "
          f"changed: {len(changed)}, skipped subtrees: {out['skipped']}")
    if changed:
        path, a, b, diff, rel = changed[0]
        print(f"largest |difference|: {diff:.3g} (relative {rel:.3g}) at {path}: {a!r} -> {b!r}")
        for path, a, b, diff, rel in changed[: args.show]:
            print(f"  {path}: {a!r} -> {b!r} (|d| {diff:.3g})")
    for key in ("other_changed", "only_before", "only_after", "length_changed"):
        items = out[key]
        print(f"{key}: {len(items)}")
        for item in items[: args.show]:
            print(f"  {item}")


if __name__ == "__main__":
    main()
