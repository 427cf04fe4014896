"""Speed verdicts: a speed ratio judged round by round (`speed_ratio`), and how often such a verdict is wrong,
the rate at which two identical models would be called faster or slower.

A verdict is given only where every round's ratio lies on one side of 1. For two identical models timed in
interleaved rounds the two times of a round are exchangeable, so each round's ratio is above 1 with probability
1/2, independently of the other rounds, and all of them on one side has probability 2 * (1/2)^rounds.
Stdlib only: the settings take their default from it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

__all__ = [
    "FALSE_VERDICT_LIMIT",
    "MIN_ROUNDS_FOR_A_VERDICT",
    "false_verdict_rate",
    "rounds_for",
    "speed_ratio",
    "verdict_note",
]

FALSE_VERDICT_LIMIT = 0.05


def false_verdict_rate(rounds: int) -> float:
    """The chance that two identical models get a verdict (faster or slower) from `rounds` rounds."""
    return min(1.0, 2.0 * 0.5**rounds)


def rounds_for(limit: float = FALSE_VERDICT_LIMIT) -> int:
    """The fewest rounds whose false-verdict rate is below `limit`."""
    rounds = 1
    while false_verdict_rate(rounds) >= limit:
        rounds += 1
    return rounds


MIN_ROUNDS_FOR_A_VERDICT = rounds_for()


def verdict_note(rounds: int) -> str:
    """The sentence a report prints beside its speed verdicts."""
    judged = (
        "verdicts are given"
        if rounds >= MIN_ROUNDS_FOR_A_VERDICT
        else f"no verdict is given below {MIN_ROUNDS_FOR_A_VERDICT} rounds"
    )
    return (
        f"With {rounds} timed round(s), two identical models would be called faster or slower "
        f"{100 * false_verdict_rate(rounds):.1f}% of the time (2 x 0.5^rounds: every round's ratio on one side "
        f"of 1); {judged} (under {100 * FALSE_VERDICT_LIMIT:.0f}% from {MIN_ROUNDS_FOR_A_VERDICT} rounds)"
    )


def speed_ratio(baseline_seconds: Sequence[float], seconds: Sequence[float]) -> str:
    """How many times faster than the baseline, from the rounds' ratios: "2.10x faster (1.95-2.30)", or
    no difference when their range includes 1, or not judged with fewer rounds than keep two identical
    models' false verdicts under 5%."""
    if len(seconds) < MIN_ROUNDS_FOR_A_VERDICT:
        return (
            f"not judged ({len(seconds)} round(s): identical models would get a verdict "
            f"{100 * false_verdict_rate(len(seconds)):.0f}% of the time; needs {MIN_ROUNDS_FOR_A_VERDICT})"
        )
    ratios = [float(base) / float(own) for base, own in zip(baseline_seconds, seconds, strict=True)]
    low, median, high = min(ratios), statistics.median(ratios), max(ratios)
    if low <= 1 <= high:
        return f"no difference (ratio {low:.2f}-{high:.2f} over {len(ratios)} rounds)"
    if median > 1:
        return f"{median:.2f}x faster ({low:.2f}-{high:.2f})"
    return f"{1 / median:.2f}x slower ({1 / high:.2f}-{1 / low:.2f})"
