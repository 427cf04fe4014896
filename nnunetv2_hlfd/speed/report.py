"""The speed benchmark's results as Markdown tables (pasted into docs/BENCHMARKS.md)."""

from __future__ import annotations

import dataclasses

from nnunetv2_hlfd.speed.step_time import PRECISION_TOLERANCE, ROTATION, SettingResult

# The targets: the distillation step within 1.10x (student step + teacher forward),
# and the terms with their adapters at most 5% of the distillation step.
BOUND_TARGET = 1.10
TERMS_SHARE_TARGET = 0.05
_MIB = 2**20


def _seconds(result: SettingResult, name: str) -> str:
    measurement = result.times[name]
    return f"{measurement.median:.3f} ± {measurement.iqr / 2:.3f}"


def _met(value: float, target: float) -> str:
    return f"{value:.3f} {'(met)' if value <= target else '(NOT met)'}"


def overhead_breakdown(result: SettingResult, method: str) -> dict[str, float]:
    """Where the method's extra time over the student step goes, as shares of that extra time."""
    extra = result.median(f"{method} step") - result.median("student step")
    teacher, terms = result.median("teacher forward"), result.median("terms")
    return {"teacher": teacher / extra, "terms": terms / extra, "rest": (extra - teacher - terms) / extra}


def summary_table(results: list[SettingResult], method: str) -> str:
    header = (
        f"| setting | patch x batch | student step (s) | {method} step (s) | teacher forward (s) | terms (s) | "
        f"{method} / student | {method} / (student + teacher) | terms / {method} step | "
        f"extra time: teacher / terms / rest | peak MiB student / {method} / teacher forward |"
    )
    rows = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in results:
        shares = overhead_breakdown(r, method)
        rows.append(
            f"| {r.setting.name} | {'x'.join(map(str, r.patch_size))} x {r.batch_size} | "
            f"{_seconds(r, 'student step')} | {_seconds(r, f'{method} step')} | {_seconds(r, 'teacher forward')} | "
            f"{_seconds(r, 'terms')} | {r.ratio(f'{method} step', 'student step'):.3f} | "
            f"{_met(r.ratio(f'{method} step', 'student step', 'teacher forward'), BOUND_TARGET)} | "
            f"{_met(r.ratio('terms', f'{method} step'), TERMS_SHARE_TARGET)} | "
            f"{shares['teacher']:.0%} / {shares['terms']:.0%} / {shares['rest']:.0%} | "
            f"{' / '.join(str(round(r.peak_memory[n] / _MIB)) for n in _memory_columns(method))} |"
        )
    return "\n".join(rows)


def other_methods_table(results: list[SettingResult], methods: list[str]) -> str:
    rows = ["| setting | method | step (s) | / student | / (student + teacher) |", "|---|---|---|---|---|"]
    for r in results:
        rows += [
            f"| {r.setting.name} | {m} | {_seconds(r, f'{m} step')} | {r.ratio(f'{m} step', 'student step'):.3f} | "
            f"{r.ratio(f'{m} step', 'student step', 'teacher forward'):.3f} |"
            for m in methods
        ]
    return "\n".join(rows)


def levers_table(results: list[SettingResult], method: str) -> str:
    rows = [
        (
            "| setting | lever | teacher forward (s) | vs fp32 teacher | step (s) | step / (student + fp32 teacher) | "
            "rel. error teacher maps / terms (tolerance) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        levers_round = dataclasses.replace(r, times=r.lever_times)  # ratios within the levers' own rounds
        for lever in (
            name.removeprefix("teacher forward ") for name in r.lever_times if name.startswith("teacher forward ")
        ):
            rows.append(_lever_row(levers_round, method, lever))
    return "\n".join(rows)


def _lever_row(r: SettingResult, method: str, lever: str) -> str:
    forward = f"teacher forward {lever}"
    step = f"step {lever} teacher"
    step_cells = (
        f"{_seconds(r, step)} | {r.ratio(step, 'student step', 'teacher forward'):.3f}" if step in r.times else "- | -"
    )
    error = r.precision_errors.get(lever)
    error_cell = (
        f"{error['teacher maps']:.4f} / {error['terms']:.4f} (<= {PRECISION_TOLERANCE[lever]}: "
        f"{'within' if max(error.values()) <= PRECISION_TOLERANCE[lever] else 'EXCEEDED'})"
        if error
        else "exact"
    )
    return (
        f"| {r.setting.name} | {lever} | {_seconds(r, forward)} | {r.ratio(forward, 'teacher forward'):.2f}x | "
        f"{step_cells} | {error_cell} |"
    )


def ensemble_table(results: list[SettingResult], method: str) -> str:
    """The step with an ensemble teacher of each member count: all members every step, or one in turn."""
    rows = [
        (
            f"| setting | members | student step (s) | teacher forward, all members (s) | {method} step, all members "
            f"(s) | / student | {method} step, {ROTATION} (s) | / student |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rotation = f"{method} step {ROTATION}"
        rotation_cells = (
            f"{_seconds(r, rotation)} | {r.ratio(rotation, 'student step'):.3f}" if rotation in r.times else "- | -"
        )
        rows.append(
            f"| {r.setting.name} | {r.setting.members} | {_seconds(r, 'student step')} | "
            f"{_seconds(r, 'teacher forward')} | {_seconds(r, f'{method} step')} | "
            f"{r.ratio(f'{method} step', 'student step'):.3f} | {rotation_cells} |"
        )
    return "\n".join(rows)


def markdown_report(results: list[SettingResult], methods: list[str]) -> str:
    method = methods[0]
    parts = [summary_table(results, method)]
    if any(r.setting.members > 1 for r in results):
        parts.append(ensemble_table(results, method))
    if len(methods) > 1:
        parts.append(other_methods_table(results, methods[1:]))
    if any(r.lever_times for r in results):
        parts.append(levers_table(results, method))
    return "\n\n".join(parts)


def _memory_columns(method: str) -> tuple[str, ...]:
    return ("student step", f"{method} step", "teacher forward")
