"""The ops/s chart of a `cachebolt bench` run (matplotlib, imported when a chart is drawn)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .harness import OPERATIONS, BenchResult


def write_plot(results: Sequence[BenchResult], path: Path, title: str) -> None:
    """A PNG of ops/s per operation (rows) and leg (bars), log scale.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (`pip install 'cachebolt[plot]'`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    operations = [op for op in OPERATIONS if any(r.operation == op for r in results)]
    legs = list(dict.fromkeys(r.leg for r in results))
    colors = {leg: f"C{i % 10}" for i, leg in enumerate(legs)}
    by = {(r.operation, r.leg): r.ops_per_sec for r in results}
    fig, ax = plt.subplots(figsize=(9, 0.8 + 0.2 * len(results) + 0.15 * len(operations)))
    y, ticks, labelled = 0.0, [], set()
    for op in operations:
        present = [leg for leg in legs if (op, leg) in by]
        ticks.append(y + (len(present) - 1) / 2)
        for leg in present:
            label = None if leg in labelled else leg
            labelled.add(leg)
            ax.barh(y, by[(op, leg)], height=0.85, color=colors[leg], label=label)
            y += 1
        y += 0.8
    ax.set_yticks(ticks, operations)
    ax.invert_yaxis()
    ax.set_xlim(left=min(by.values()) / 2)
    ax.set_xscale("log")
    ax.set_xlabel("operations per second (log scale, higher is better)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
