"""Compare the retrieved sources of two demo runs (``--out`` files) question by question, as sets.

    .venv/bin/python examples/rag/compare.py cpu.json gpu.json

A question whose top-k sets differ is accepted as a *near tie* when every passage in only one of
the runs scored within ``--tie-eps`` of that run's last (k-th) score: the two runs then disagree only
about which of two almost equally close passages takes the last place (fp16 storage on a GPU moves
scores by about 1e-3). Exit status 0 when every question matches or is a near tie, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class SourceDifference:
    """One question whose source sets differ: what only each run found, and whether it is a near tie."""

    question_id: str
    only_first: dict[str, float]
    only_second: dict[str, float]
    near_tie: bool


def compare_runs(first: Mapping[str, Any], second: Mapping[str, Any], tie_eps: float = 0.01) -> list[SourceDifference]:
    """The questions whose source sets differ between two ``--out`` documents (questions in both only)."""
    rows_b = {row["id"]: row for row in second["questions"]}
    differences = []
    for row_a in first["questions"]:
        row_b = rows_b.get(row_a["id"])
        if row_b is None or set(row_a["sources"]) == set(row_b["sources"]):
            continue
        only_a = _only(row_a, row_b)
        only_b = _only(row_b, row_a)
        near = _at_cutoff(row_a, only_a, tie_eps) and _at_cutoff(row_b, only_b, tie_eps)
        differences.append(SourceDifference(row_a["id"], only_a, only_b, near))
    return differences


def _only(row: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, float]:
    scores = dict(zip(row["sources"], row["scores"]))
    return {pid: scores[pid] for pid in row["sources"] if pid not in set(other["sources"])}


def _at_cutoff(row: Mapping[str, Any], only: Mapping[str, float], tie_eps: float) -> bool:
    last = min(row["scores"]) if row["scores"] else 0.0
    return all(score - last <= tie_eps for score in only.values())


def main(argv: list[str] | None = None) -> int:
    """Print the differences; 0 when every question matches or differs only by a near tie."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path, help="results JSON of one run (rag_demo.py --out)")
    parser.add_argument("second", type=Path, help="results JSON of the other run")
    parser.add_argument("--tie-eps", type=float, default=0.01, help="score distance to the k-th score that counts as a tie")
    args = parser.parse_args(argv)
    first, second = (json.loads(p.read_text(encoding="utf-8")) for p in (args.first, args.second))
    common = {r["id"] for r in first["questions"]} & {r["id"] for r in second["questions"]}
    differences = compare_runs(first, second, args.tie_eps)
    print(f"{first.get('device', '?')} ({args.first}) vs {second.get('device', '?')} ({args.second}): {len(common)} questions in both")
    for d in differences:
        verdict = "near tie" if d.near_tie else "DIFFERENT"
        print(f"  {d.question_id}: {verdict}; only first {d.only_first}, only second {d.only_second}")
    unexplained = sum(not d.near_tie for d in differences)
    print(f"same sources: {len(common) - len(differences)}; near ties: {len(differences) - unexplained}; different: {unexplained}")
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
