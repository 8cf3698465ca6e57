"""Count the bad inputs of the catalogue, by where they live (not a test module).

Run from the repository root::

    PYTHONPATH=src python tests/catalogue_count.py

It prints one line per part: hand-written API entries (and how many also run through the CLI),
the CLI-only command lines, the cases generated from the declared parameter tables, and the
reliability test files, with how many of each run in the default suite (the rest are marked
``slow``). The total is the catalogue's size.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# tables declared at the API's doors in reliability r4 (the others existed before)
R4_TABLES = {
    "AttentionObjective", "Automaton", "SingleLayerAttention", "reduce_dataset",
    "regularization_path", "run_finite_trajectory", "run_with_cache", "solve", "solve_finite",
    "solve_graph_svm", "solve_norm_svm", "train", "verify",
}  # fmt: skip


def _collected(*files: str) -> tuple[int, int]:
    """(all items, items not marked slow) that pytest collects from ``files``."""
    import pytest

    class Count:
        items: list = []

        def pytest_collection_modifyitems(self, items):  # noqa: ANN001 - pytest hook
            Count.items = list(items)

    plugin = Count()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "", "-n", "0",
                        *(str(HERE / f) for f in files)], plugins=[plugin])  # fmt: skip
    if code not in (0, 5):
        raise SystemExit(f"collection failed ({code})")
    slow = sum(item.get_closest_marker("slow") is not None for item in Count.items)
    return len(Count.items), len(Count.items) - slow


def main() -> None:
    import io
    from contextlib import redirect_stdout

    import test_catalogue as cat
    import test_catalogue_cli as cli

    old, budget, doors = cat._cases(), cat._budget_cases(), cat._door_cases()
    sweepops = cat._sweepops_cases()
    by_table = Counter(where for where, _, _ in cat.GENERATED)
    generated_r4 = sum(n for t, n in by_table.items() if t in R4_TABLES)
    with redirect_stdout(io.StringIO()):
        paths = _collected("test_reliab_paths.py")
        writes = _collected("test_reliab_writes.py")
    cli_default = sum(i % 3 == 0 for i in range(len(cli.CASES)))
    rows = [
        ("test_catalogue.py entries, round 2", len(old), len(old)),
        ("test_catalogue.py entries, r3 budgets", len(budget), len(budget)),
        ("test_catalogue.py entries, r4 API doors", len(doors), len(doors)),
        ("test_catalogue.py entries, r4 sweep operations", len(sweepops), len(sweepops)),
        ("test_catalogue_cli.py command lines (r4)", len(cli.CASES), cli_default),
        ("generated from declared tables, r3 tables", len(cat.GENERATED) - generated_r4,
         len(cat.GENERATED) - generated_r4),
        ("generated from declared tables, r4 tables", generated_r4, generated_r4),
        ("test_reliab_paths.py (r3)", *paths),
        ("test_reliab_writes.py (r4: disk full, locks, bars)", *writes),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'part':<{width}}  {'cases':>6}  {'default':>7}")
    for name, n, default in rows:
        print(f"{name:<{width}}  {n:>6}  {default:>7}")
    total = sum(r[1] for r in rows)
    print(f"{'total bad inputs':<{width}}  {total:>6}  {sum(r[2] for r in rows):>7}")
    cli_lines = sum(c.cli is not None for c in old + budget + doors + sweepops)
    print(f"(of the entries, {cli_lines} also run through the CLI)")


if __name__ == "__main__":
    main()
