"""Time the heuristic planner on long, degenerate requirements, at two sizes each.

Planning must be linear in the requirement: each shape is planned at ``N`` and ``2N`` words and
the ratio of the times printed (about 2 is linear; about 4 is quadratic). The shapes are the ones
that once hit quadratic paths: many one-letter words, many stop words, endless enumerations.

    .venv/bin/python bench/planner.py [WORDS]
"""

from __future__ import annotations

import sys
import time

from taskorch.planning import HeuristicPlanner

SHAPES = {
    "one-letter words": "a",
    "stop words": "the",
    "action verbs": "add",
    "commas": "a,",
    "conjunctions": "and",
    "sequence cues": "then",
    "file names": "x.py",
    "sentences": "Add x.",
    "lines": "a\n",
    "no blanks": "",
}
WORDS = 300_000


def requirement(unit: str, words: int) -> str:
    if not unit:
        return "a" * words * 2
    return "".join(unit + ("" if unit.endswith("\n") else " ") for _ in range(words))


def seconds(text: str) -> float:
    planner = HeuristicPlanner()
    started = time.perf_counter()
    planner.plan(text)
    return time.perf_counter() - started


def main() -> None:
    words = int(sys.argv[1]) if len(sys.argv) > 1 else WORDS
    print(f"{'shape':<18} {words // 2:>9,} words {words:>9,} words  ratio")
    for name, unit in SHAPES.items():
        half = seconds(requirement(unit, words // 2))
        full = seconds(requirement(unit, words))
        print(f"{name:<18} {half:>13.3f} s {full:>13.3f} s  {full / max(half, 1e-9):5.1f}")


if __name__ == "__main__":
    main()
