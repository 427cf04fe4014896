"""The benchmark's options and its tables, on constructed inputs (no nnU-Net folders)."""

import argparse
import math

import pandas as pd
import pytest
from case_tables import lesion_table

from nnunetv2_hlfd.evaluation import compression, metrics
from nnunetv2_hlfd.evaluation.command import add_parser, settings_from_args
from nnunetv2_hlfd.evaluation.compression import ModelCosts, compression_table
from nnunetv2_hlfd.evaluation.settings import ALL_FOLDS, DEFAULT_TOLERANCE_MM, EMPTY_CONVENTIONS
from nnunetv2_hlfd.evaluation.tables import format_cell
from nnunetv2_hlfd.evaluation.timing.prediction import volume_summary


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["benchmark", "-d", "991", "-c", "2d", *argv])


# --- options -----------------------------------------------------------------------------


def test_defaults_score_all_five_folds_and_leave_the_devices_to_the_hardware():
    settings = settings_from_args(parse())
    assert settings.folds == ALL_FOLDS and settings.devices is None and settings.speed
    assert settings.reference == "nnUNetTrainerStudent" and not settings.run_missing_validation
    assert settings.volume_cases == 3


def test_volume_cases_below_one_are_refused():
    with pytest.raises(ValueError, match="--volume-cases must be at least 1"):
        settings_from_args(parse("--volume-cases", "0"))


def test_no_speed_switches_timing_off():
    assert not settings_from_args(parse("--no-speed")).speed


def test_zero_repetitions_are_refused():
    with pytest.raises(ValueError, match="--repetitions must be at least 1"):
        settings_from_args(parse("--repetitions", "0"))


def test_the_light_command_module_agrees_with_the_metrics_defaults():
    assert DEFAULT_TOLERANCE_MM == metrics.DEFAULT_TOLERANCE_MM
    assert EMPTY_CONVENTIONS == tuple(convention.value for convention in metrics.EmptyConvention)


# --- the compression table ---------------------------------------------------------------


def dsc_per_case(dsc_by_trainer: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """One case: each trainer's (kidney, tumour) DSC."""
    rows = [
        {"trainer": trainer, "fold": 0, "case": "c0", "class": name, "dsc": value}
        for trainer, values in dsc_by_trainer.items()
        for name, value in zip(("kidney", "tumor"), values)
    ]
    return pd.DataFrame(rows)


def costs(parameters: dict[str, int], speed: pd.DataFrame | None = None) -> ModelCosts:
    return ModelCosts(
        pd.DataFrame(
            [
                {"trainer": t, "parameters": p, "macs_per_patch": 10 * p, "patch_size": "8x8"}
                for t, p in parameters.items()
            ]
        ),
        speed,
    )


def test_compression_table_relates_cost_and_dsc_to_teacher_and_reference():
    table = compression_table(
        costs({"teacher": 100, "student": 25, "hlfd": 25}),
        dsc_per_case({"teacher": (0.9, 0.7), "student": (0.8, 0.5), "hlfd": (0.85, 0.6)}),
        teacher="teacher",
        reference="student",
    ).set_index("trainer")
    assert table.loc["hlfd", "parameters_vs_teacher"] == 0.25
    assert table.loc["hlfd", "macs_per_patch_vs_teacher"] == 0.25
    assert table.loc["hlfd", "delta_dsc_tumor_vs_teacher"] == pytest.approx(-0.1)
    assert table.loc["hlfd", "delta_dsc_kidney_vs_reference"] == pytest.approx(0.05)
    assert table.loc["hlfd", "dsc_mean"] == pytest.approx(0.725)


def test_compression_table_compares_dsc_on_the_cases_every_model_has():
    # the teacher's tumour DSC is undefined in case c2: its mean over c0-c1 (0.7) must not meet the
    # student's over c0-c2 (0.5): on the common cases c0-c1 both are 0.7
    per_case = pd.DataFrame(
        [
            {"trainer": trainer, "fold": 0, "case": case, "class": "tumor", "dsc": value}
            for trainer, values in (("teacher", (0.8, 0.6, math.nan)), ("student", (0.9, 0.5, 0.1)))
            for case, value in zip(("c0", "c1", "c2"), values)
        ]
    )
    table = compression_table(costs({"teacher": 100, "student": 25}), per_case, "teacher", "student")
    student = table.set_index("trainer").loc["student"]
    assert student["dsc_tumor"] == pytest.approx(0.7) and student["delta_dsc_tumor_vs_teacher"] == pytest.approx(0)
    assert (table["n_cases_dsc_tumor"] == 2).all()


def test_compression_table_without_the_teacher_leaves_its_ratios_undefined():
    table = compression_table(
        costs({"student": 25, "hlfd": 25}),
        dsc_per_case({"student": (0.8, 0.5), "hlfd": (0.85, 0.6)}),
        teacher="teacher",
        reference="student",
    )
    assert table["parameters_vs_teacher"].isna().all() and table["delta_dsc_mean_vs_teacher"].isna().all()


def test_compression_table_has_one_speed_column_per_measure_and_device():
    speed = pd.DataFrame(
        [
            {
                "trainer": t,
                "device": d,
                "patch_latency_ms": 1.0,
                "patch_peak_memory_mib": 2.0,
                "volume_latency_s": 3.0,
                "volume_peak_memory_mib": 4.0,
                "patch_latencies_ms": [1.0] * 6,
                "volume_round_seconds": [3.0] * 6,
            }
            for t in ("teacher", "student")
            for d in ("cpu", "cuda")
        ]
    )
    table = compression_table(
        costs({"teacher": 100, "student": 25}, speed),
        dsc_per_case({"teacher": (0.9, 0.7), "student": (0.8, 0.5)}),
        "teacher",
        "student",
    )
    assert {"volume_latency_s_cpu", "volume_latency_s_cuda", "patch_peak_memory_mib_cuda"} <= set(table.columns)
    assert table.set_index("trainer").loc["student", "volume_speed_vs_teacher_cuda"].startswith("no difference")


@pytest.mark.parametrize(
    "column, value, text",
    [
        ("parameters", 1928489, "1,928,489"),
        ("parameters_vs_teacher", 0.434, "43.4%"),
        ("delta_dsc_mean_vs_teacher", -0.05, "-0.0500"),
        ("p_holm", 0.0001, "<0.001"),
        ("volume_latency_s_cpu", math.nan, "n/a"),
    ],
)
def test_report_cells_are_formatted_by_what_the_column_holds(column, value, text):
    assert format_cell(column, value) == text


# --- the volumes timed --------------------------------------------------------------------


class FakeDataset:
    def validation_cases(self, fold):
        return {0: ["c1", "c2", "c3", "c4"], 1: ["d1"]}[fold]


@pytest.mark.parametrize("volume_cases, expected", [(2, ["c1", "c2"]), (9, ["c1", "c2", "c3", "c4"])])
def test_volumes_are_timed_on_the_first_validation_cases_of_the_first_fold(monkeypatch, volume_cases, expected):
    timed = []
    monkeypatch.setattr(compression, "network_cost", lambda model: {"trainer": model})
    monkeypatch.setattr(
        compression,
        "measure_speed",
        lambda models, fold, cases, dataset, device, repetitions: (
            timed.append((list(models), fold, list(cases), device.type)) or [{"trainer": model} for model in models]
        ),
    )
    settings = argparse.Namespace(speed=True, folds=(0, 1), volume_cases=volume_cases, devices=("cpu",), repetitions=1)
    compression.measure_models(["teacher", "student"], FakeDataset(), settings)
    assert timed == [(["teacher", "student"], 0, expected, "cpu")]


def test_the_report_says_where_each_trainers_paper_protocol_tumour_came_from():
    from nnunetv2_hlfd.evaluation.report import tumour_source_note

    per_case = pd.DataFrame(
        {
            "trainer": ["a", "a", "b", "b"],
            "tumour_source": ["probability > 0.4", "probability > 0.4", "segmentation", "segmentation"],
        }
    )
    note = tumour_source_note(per_case)[0]
    assert "a: probability > 0.4 (2 cases); b: segmentation (2 cases)" in note and "--npz" in note
    assert tumour_source_note(per_case.drop(columns="tumour_source")) == []


def test_the_speed_section_gives_spread_machine_and_no_speed_up_within_the_noise():
    from nnunetv2_hlfd.evaluation.report import speed_section

    speed = pd.DataFrame(
        [
            {
                "trainer": t,
                "device": "cpu",
                "hardware": "Some CPU 9000",
                "threads": 1,
                "repetitions": 6,
                "patch_latency_ms": 70.0,
                "patch_latency_q25_ms": 63.0,
                "patch_latency_q75_ms": 80.0,
                "patch_peak_memory_mib": 12.0,
                "volume_latency_s": 9.3,
                "volume_latency_s_per_case": '{"c1": 9.3, "c2": 18.4}',
                "n_cases": 2,
                "volume_peak_memory_mib": 300.0,
                "patch_latencies_ms": times,
                "volume_round_seconds": times,
            }
            for t, times in (("teacher", [90.0, 56.0, 70.0] * 2), ("student", [56.0, 90.0, 70.0] * 2))
        ]
    )
    table = compression_table(
        costs({"teacher": 100, "student": 100}, speed),
        dsc_per_case({"teacher": (0.9, 0.7), "student": (0.9, 0.7)}),
        "teacher",
        "teacher",
    )
    text = "\n".join(speed_section(speed, table))
    assert "| teacher | cpu | Some CPU 9000 | 1 | 6 | 70 [63-80] | 12 | 9.3 [9.3-18.4] (2 cases) | 300 |" in text
    assert "no difference (ratio 0.62-1.61 over 6 rounds)" in text and " faster (" not in text
    assert "would be called faster or slower 3.1% of the time" in text


# --- what the report adds: the dataset described ------------------------------------------


def test_the_dataset_is_described_by_cases_absent_classes_and_spacing():
    from nnunetv2_hlfd.evaluation.report import dataset_description

    assert dataset_description(lesion_table()) == (
        "Dataset: 3 validation cases scored (1 without tumor); spacing "
        "(mm, array axes in nnU-Net's order) median 4 x 0.9 x 0.9, "
        "range 3-5 x 0.78-0.98 x 0.78-0.98.\n"
    )


def test_figure_axes_name_units_tolerance_and_the_paper_protocols_metric():
    from nnunetv2_hlfd.evaluation.figures import metric_label

    assert metric_label("hd95", 1.0, "standard") == "HD95 (mm)"
    assert metric_label("surface_dice", 1.5, "standard") == "surface Dice at 1.5 mm"
    assert metric_label("dsc", 1.0, "paper") == "tumour DSC (tumour slices)" != metric_label("dsc", 1.0, "standard")


# --- which DSC convention each table and figure uses, and its n ---------------------------


def test_the_compression_dsc_and_the_figure_name_their_convention_and_n():
    from nnunetv2_hlfd.evaluation.figures import dsc_axis_label, dsc_with_intervals
    from nnunetv2_hlfd.evaluation.report import n_cases_text

    per_case = dsc_per_case({"teacher": (0.9, 0.7), "student": (0.8, 0.5)})
    table = compression_table(costs({"teacher": 100, "student": 25}), per_case, "teacher", "student")
    assert n_cases_text(table) == "kidney 1, tumor 1"
    n = int(dsc_with_intervals(per_case, ["teacher", "student"])["n"].max())
    label = dsc_axis_label("standard", n)
    assert "n = 1 common cases" in label and "absent from both counts as 1" in label


def test_the_figure_draws_the_volume_latency_range_over_rounds():
    from nnunetv2_hlfd.evaluation.figures import latency_range

    summary = volume_summary({"c1": (10.0, [1.0, 2.0, 3.0]), "c2": (10.0, [5.0, 4.0, 9.0])})
    assert (summary["volume_latency_min_s"], summary["volume_latency_max_s"]) == (3.0, 6.0)  # rounds' medians
    row = pd.Series({"volume_latency_s_cpu": 3.5, "volume_latency_min_s_cpu": 3.0, "volume_latency_max_s_cpu": 6.0})
    assert latency_range(row, "volume_latency_s_cpu") == [[0.5], [2.5]]
    assert latency_range(row, "parameters") is None
