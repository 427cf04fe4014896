"""How often a speed verdict is wrong: the rate at which two identical models would be called faster or slower.

A speed ratio is judged round by round (`compression.speed_ratio`): a verdict only where every round's ratio
lies on one side of 1. For two identical models timed in interleaved rounds the two times of a round are
exchangeable, so each round's ratio is above 1 with probability 1/2, independently of the other rounds, and
all of them on one side has probability 2 * (1/2)^rounds. Stdlib only: the settings take their default from it.
"""

from __future__ import annotations

__all__ = ["FALSE_VERDICT_LIMIT", "MIN_ROUNDS_FOR_A_VERDICT", "false_verdict_rate", "rounds_for", "verdict_note"]

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
