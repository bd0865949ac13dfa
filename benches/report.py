"""The ratio report of `make bench`: every scenario with every leg, and the goal verdicts.

Built from the benchmarks' `extra_info` only (`scenario`, `size`, `leg`, `ns_per_op` = median of
rounds, `min_ns_per_op` = fastest round, `reference`, `note`, `goals`, `report_md`), so the same
code renders the end-of-session report and regenerates it from a saved pytest-benchmark JSON:

    .venv/bin/python benches/report.py .benchmarks/bench.json \
        [--out .benchmarks/results-latest.md] [--results benches/RESULTS.md]

`--results` rewrites the part of RESULTS.md between `<!-- report:begin -->` and
`<!-- report:end -->` with the report, and `--insert NAME=FILE` the part between
`<!-- NAME:begin -->` and `<!-- NAME:end -->` with a file (the machine, the `cachebolt bench`
table), so a rerun on a quiet machine updates the published tables mechanically
(`make bench-results`).

Figures are ns per operation, loop included. The tables show the fastest round of each leg (the
least disturbed by other processes on a shared machine) and the ratio of fastest rounds, all
legs measured in the same run; the median is in the JSON and in the verdicts.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

GOAL_SIZE = 100_000
BEGIN, END = "<!-- {}:begin -->", "<!-- {}:end -->"
# Scenario order in the report (anything else follows, sorted).
ORDER = (
    "get-hit", "get-hit-int", "get-miss", "set", "set-int", "set-insert", "get_or_set-hit",
    "delete", "incr", "sadd", "sismember", "smembers", "hset", "hget", "hgetall",
    "rate-limit-under", "rate-limit-at-limit", "rate-limit-fixed-window",
    "rate-limit-sliding-counter", "lock-acquire-release", "del_pattern-1%", "del_pattern-100%",
    "active-expiry", "publish-to-callback", "two-threads",
    "codec-encode", "codec-decode", "codec-roundtrip",
)  # fmt: skip
REFERENCE = "cachebolt"

Info = Mapping[str, Any]


def size_label(n: int | None) -> str:
    """10000 -> "10k", 1000000 -> "1M"."""
    if n is None:
        return "-"
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _fmt(ns: float) -> str:
    if ns >= 1_000_000:
        return f"{ns / 1e6:,.2f} ms"
    if ns >= 10_000:
        return f"{ns / 1e3:,.1f} µs"
    return f"{ns:,.0f} ns" if ns >= 100 else f"{ns:,.1f} ns"


def infos(benchmarks: Iterable[Mapping[str, Any]]) -> list[Info]:
    """The `extra_info` of every measured benchmark (a dict of pytest-benchmark's JSON)."""
    out = []
    for bench in benchmarks:
        info = dict(bench.get("extra_info") or {})
        info.setdefault("scenario", bench.get("group") or bench.get("name"))
        out.append(info)
    return out


class Results:
    """The measured legs, indexed by (scenario, size, leg)."""

    def __init__(self, all_infos: list[Info]) -> None:
        self.infos = all_infos
        self.timed: dict[tuple[str, int | None], dict[str, Info]] = {}
        for info in all_infos:
            if "ns_per_op" in info and "leg" in info:
                key = (str(info["scenario"]), info.get("size"))
                self.timed.setdefault(key, {})[str(info["leg"])] = info

    def ns(self, scenario: str, size: int | None, leg: str, field: str = "min") -> float | None:
        """ns/op of a leg: `field` "min" (fastest round) or "median"."""
        info = self.timed.get((scenario, size), {}).get(leg)
        if info is None:
            return None
        return float(info["min_ns_per_op" if field == "min" else "ns_per_op"])

    def sizes(self, scenario: str) -> list[int | None]:
        return sorted(
            {s for sc, s in self.timed if sc == scenario}, key=lambda s: -1 if s is None else s
        )

    def scenarios(self) -> list[str]:
        names = {sc for sc, _ in self.timed}
        ordered = [s for s in ORDER if s in names]
        return ordered + sorted(names - set(ordered))


def ratio_tables(res: Results) -> str:
    """One table per scenario: legs as rows, sizes as columns, each cell "ns/op (ratio)".

    The ratio is leg / cachebolt memory (sync) at the same size: above 1 means cachebolt is
    faster by that factor.
    """
    out = []
    for scenario in res.scenarios():
        sizes = res.sizes(scenario)
        legs: dict[str, float] = {}
        for size in sizes:
            for leg, info in res.timed[(scenario, size)].items():
                legs.setdefault(leg, float(info["min_ns_per_op"]))
        head = " | ".join(size_label(s) for s in sizes)
        out += [f"#### {scenario}", "", f"| leg | {head} |", "|---" + "|---:" * len(sizes) + "|"]
        ordered = sorted(legs, key=lambda leg: (leg != REFERENCE, legs[leg]))
        notes = []
        for leg in ordered:
            cells = []
            for size in sizes:
                info = res.timed[(scenario, size)].get(leg)
                if info is None:
                    cells.append("")
                    continue
                ns = float(info["min_ns_per_op"])
                ref = res.ns(scenario, size, REFERENCE)
                ratio = f" ({ns / ref:.2f}x)" if ref else ""
                cells.append(_fmt(ns) + ratio)
                if info.get("note") and (leg, info["note"]) not in notes:
                    notes.append((leg, info["note"]))
            name = f"**{leg}**" if leg == REFERENCE else leg
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out += [f"- {leg}: {note}" for leg, note in notes]
        out.append("")
    return "\n".join(out)


def _verdict(met: bool | None) -> str:
    return "-" if met is None else ("met" if met else "**MISSED**")


def goals(res: Results) -> list[tuple[str, str, bool | None]]:
    """(goal, measured, met) for every performance goal this run has the legs for."""
    rows: list[tuple[str, str, bool | None]] = []
    size = GOAL_SIZE

    def pair(scenario: str, leg: str, other: str, at: int | None = size) -> tuple[float, ...]:
        vals = (
            res.ns(scenario, at, leg),
            res.ns(scenario, at, other),
            res.ns(scenario, at, leg, "median"),
            res.ns(scenario, at, other, "median"),
        )
        return () if None in vals else tuple(float(v) for v in vals if v is not None)

    def within(scenario: str, leg: str, other: str, bound: float, label: str) -> None:
        p = pair(scenario, leg, other)
        if p:
            a, b, am, bm = p
            measured = f"{a / b:.2f}x (median {am / bm:.2f}x): {_fmt(a)} vs {_fmt(b)}"
            rows.append((label, measured, a <= bound * b))

    def faster(scenario: str, leg: str, other: str, factor: float, label: str) -> None:
        p = pair(scenario, leg, other)
        if p:
            a, b, am, bm = p
            measured = f"{b / a:.1f}x faster (median {bm / am:.1f}x): {_fmt(a)} vs {_fmt(b)}"
            rows.append((label, measured, b >= factor * a))

    at = f"@{size_label(size)}"
    for sc in ("get-hit", "set"):
        within(sc, REFERENCE, "floor", 1.10, f"{sc}{at}: cachebolt <= 1.10x the pure-Python floor")
        for peer in ("cachetools", "theine"):
            faster(sc, REFERENCE, peer, 1.0, f"{sc}{at}: cachebolt faster than {peer}")
    for sc in ("incr", "sismember", "hget"):
        faster(sc, REFERENCE, "fakeredis", 50, f"{sc}{at}: cachebolt >= 50x faster than fakeredis")
    limits_legs = [
        leg
        for leg in res.timed.get(("rate-limit-under", size), {})
        if leg.startswith("limits") and "redis" not in leg
    ]
    if limits_legs:
        best = min(limits_legs, key=lambda leg: res.ns("rate-limit-under", size, leg) or 0.0)
        faster(
            "rate-limit-under",
            REFERENCE,
            best,
            10,
            f"check_rate_limit{at}: cachebolt >= 10x faster than limits' fastest ({best})",
        )
    within(
        "lock-acquire-release",
        REFERENCE,
        "floor: 2x bare PyO3 call",
        1.5,
        f"acquire+release{at}: cachebolt <= 1.5x two bare PyO3 calls",
    )
    # Cost at the largest size within 1.5x of the smallest, for every cachebolt memory leg.
    for scenario in res.scenarios():
        sizes = [s for s in res.sizes(scenario) if s is not None]
        if len(sizes) < 2:
            continue
        lo, hi = sizes[0], sizes[-1]
        for leg in ("cachebolt", "cachebolt async"):
            a, b = res.ns(scenario, hi, leg), res.ns(scenario, lo, leg)
            if a is None or b is None:
                continue
            measured = f"{a / b:.2f}x: {_fmt(a)} vs {_fmt(b)}"
            # The same growth of a floor shows what the memory hierarchy alone costs.
            for floor in ("floor", "floor async", "core", "bare PyO3 call"):
                fa, fb = res.ns(scenario, hi, floor), res.ns(scenario, lo, floor)
                if fa is not None and fb is not None:
                    measured += f" ({floor}: {fa / fb:.2f}x)"
                    break
            rows.append(
                (
                    f"{scenario}: {leg} at {size_label(hi)} <= 1.5x its cost at {size_label(lo)}",
                    measured,
                    a <= 1.5 * b,
                )
            )
    # Redis backend: get/set <= 1.10x raw redis-py, check_rate_limit >= 1.5x limits' moving window.
    for sc in ("get-hit", "set"):
        for leg in sorted(res.timed.get((sc, size), {})):
            if leg.startswith("cachebolt redis ["):
                parser = leg.rsplit("[", 1)[1]
                within(sc, leg, f"redis-py 1conn [{parser}", 1.10, f"{sc}{at}: {leg} <= 1.10x raw")
    for leg in sorted(res.timed.get(("rate-limit-under", size), {})):
        if leg.startswith("cachebolt redis ["):
            parser = leg.rsplit("[", 1)[1]
            peer = f"limits-redis MovingWindow [{parser}"
            faster(
                "rate-limit-under", leg, peer, 1.5, f"check_rate_limit{at}: {leg} >= 1.5x {peer}"
            )
            note = str(res.timed[("rate-limit-under", size)][leg].get("note", ""))
            if note:
                trips = note.split("per call: ", 1)[-1].split(" [", 1)[0]
                rows.append(
                    (f"check_rate_limit: {leg} one round trip", trips, trips.count("+") == 0)
                )
    for info in res.infos:
        for goal in info.get("goals", []):
            rows.append((str(goal["goal"]), str(goal["measured"]), goal["met"]))
    return rows


def goals_table(res: Results) -> str:
    """Markdown table of the goals with their verdicts."""
    lines = ["| goal | measured (fastest rounds; median in brackets) | verdict |", "|---|---|---|"]
    lines += [f"| {g} | {m} | {_verdict(met)} |" for g, m, met in goals(res)]
    return "\n".join(lines)


def render(all_infos: list[Info], header: str = "") -> str:
    """The whole report as Markdown."""
    res = Results(all_infos)
    parts = [header] if header else []
    parts += ["### Goals", "", goals_table(res), ""]
    parts += ["### Every scenario, every leg (ns/op, fastest round; ratio to cachebolt)", ""]
    parts += [ratio_tables(res)]
    extra = [str(i["report_md"]) for i in all_infos if i.get("report_md")]
    if extra:
        parts += ["### Other measurements", "", "\n\n".join(extra), ""]
    return "\n".join(parts)


def replace_between_markers(path: Path, body: str, name: str = "report") -> None:
    """Rewrite the text between the `name` markers in `path` (they must be present)."""
    begin, end = BEGIN.format(name), END.format(name)
    text = path.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"{path}: markers {begin} / {end} not found")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{body.strip()}\n{end}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "json",
        type=Path,
        nargs="+",
        help="pytest-benchmark JSON (--benchmark-json); a later file's legs replace an earlier's",
    )
    parser.add_argument("--out", type=Path, help="write the report there (default: stdout)")
    parser.add_argument("--results", type=Path, help="update the report section of RESULTS.md")
    parser.add_argument(
        "--insert",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="with --results: also put FILE between the NAME markers",
    )
    args = parser.parse_args(argv)
    runs = [json.loads(path.read_text(encoding="utf-8")) for path in args.json]
    machine = runs[0].get("machine_info", {})
    header = (
        f"Run {runs[0].get('datetime', '?')} on {machine.get('cpu', {}).get('brand_raw', '?')}, "
        f"Python {machine.get('python_version', '?')}, from "
        + ", ".join(f"`{path}`" for path in args.json)
        + ".\n"
    )
    report = render(infos([b for run in runs for b in run["benchmarks"]]), header)
    if args.out:
        args.out.write_text(report + "\n", encoding="utf-8")
    if args.results:
        replace_between_markers(args.results, report)
        for spec in args.insert:
            name, _, file = spec.partition("=")
            body = Path(file).read_text(encoding="utf-8")
            replace_between_markers(args.results, body, name)
    if not args.out and not args.results:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
