"""The study runner's scheduling: order, skipping, resuming, failures, workers, submitit, status.

A stand-in nnUNetv2_train (tests/study/fake_nnunet) "trains" in a fraction of a second, so these tests check
what the runner asks nnU-Net to do; tests/test_demo.py runs the same code with real trainings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from figure_checks import coloured_fraction, grid_cells, read_png
from study_helpers import FAKE_DATASET, fake_nnunet, fake_settings, finish, fold_folder, read_calls

from nnunetv2_hlfd.study.grid import StudySettings, study_graph, train_command
from nnunetv2_hlfd.study.jobs import Slot
from nnunetv2_hlfd.study.runner import StudyIncomplete, run_study, student_classes, study_roles, worker_slots
from nnunetv2_hlfd.study.scheduler import SubmititBackend


@pytest.fixture
def calls(tmp_path, monkeypatch):
    return fake_nnunet(tmp_path, monkeypatch)


def by_key(calls_file) -> dict[str, dict]:
    return {call["key"]: call for call in read_calls(calls_file)}


# ---------------------------------------------------------------------------- the graph


def test_graph_puts_each_folds_teacher_before_its_students():
    graph = study_graph(fake_settings(folds=(0, 1, 2)))
    position = {t.key: i for i, t in enumerate(graph)}
    for training in graph:
        for needed in training.depends_on:
            assert position[needed] < position[training.key]
    students = [t for t in graph if t.trainer != "nnUNetTrainer"]
    assert {t.depends_on for t in students if t.fold == 1} == {("nnUNetTrainer/fold_1",)}
    assert len(graph) == 3 * 3


def test_students_start_only_after_their_teacher_finished(calls):
    run_study(fake_settings(workers=2), show_progress=False)
    done = by_key(calls)
    assert len(done) == 6
    for fold in (0, 1):
        assert done[f"nnUNetTrainerHLFD/fold_{fold}"]["start"] >= done[f"nnUNetTrainer/fold_{fold}"]["end"]


def test_the_plain_student_needs_no_teacher_so_trains_beside_it():
    graph = study_graph(fake_settings(folds=(0,)), distils=lambda trainer: trainer != "nnUNetTrainerStudent")
    needs = {t.trainer: t.depends_on for t in graph}
    assert needs["nnUNetTrainerStudent"] == ()
    assert needs["nnUNetTrainerHLFD"] == ("nnUNetTrainer/fold_0",)


def test_students_are_told_the_studys_teacher(calls, tmp_path):
    run_study(fake_settings(folds=(0,)), show_progress=False)
    done = by_key(calls)
    teacher_folder = tmp_path / "nnUNet_results" / FAKE_DATASET / "nnUNetTrainer__nnUNetPlans__2d"
    assert done["nnUNetTrainerHLFD/fold_0"]["HLFD_TEACHER"] == str(teacher_folder)
    assert done["nnUNetTrainer/fold_0"]["HLFD_TEACHER"] is None


# ---------------------------------------------------------------------------- rerunning


def test_finished_trainings_are_skipped_and_started_ones_continued_with_c(calls):
    finish("nnUNetTrainer", 0)
    fold_folder("nnUNetTrainerStudent", 0).mkdir(parents=True)
    (fold_folder("nnUNetTrainerStudent", 0) / "checkpoint_latest.pth").write_text("half way")
    run_study(fake_settings(folds=(0,)), show_progress=False)
    done = by_key(calls)
    assert "nnUNetTrainer/fold_0" not in done
    assert "--c" in done["nnUNetTrainerStudent/fold_0"]["argv"]
    assert "--c" not in done["nnUNetTrainerHLFD/fold_0"]["argv"]


def test_failed_training_is_reported_with_its_log_tail_and_the_rerun_runs_only_it(calls, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_NNUNET_FAIL", "nnUNetTrainerHLFD/fold_1")
    settings = fake_settings()
    with pytest.raises(
        StudyIncomplete,
        match=r"(?s)1 of 6 trainings did not finish.*nnUNetTrainerHLFD/fold_1: failed"
        r".*Rerun the same command.*5 finished ones are kept",
    ):
        run_study(settings, show_progress=False)
    assert "RuntimeError: fake failure of nnUNetTrainerHLFD/fold_1" in "".join(capsys.readouterr())
    status = json.loads((fold_folder("nnUNetTrainer", 0).parents[1] / "hlfd_study_2d" / "status.json").read_text())
    assert status["counts"]["done"] == 5 and status["counts"]["failed"] == 1

    monkeypatch.delenv("FAKE_NNUNET_FAIL")
    calls.unlink()
    run_study(settings, show_progress=False)
    assert list(by_key(calls)) == ["nnUNetTrainerHLFD/fold_1"]


def test_a_failed_teacher_blocks_its_distilled_students_but_not_the_plain_one_nor_the_other_folds(calls, monkeypatch):
    monkeypatch.setenv("FAKE_NNUNET_FAIL", "nnUNetTrainer/fold_0")
    with pytest.raises(StudyIncomplete, match=r"(?s)nnUNetTrainerHLFD/fold_0: blocked: nnUNetTrainer/fold_0 did not"):
        run_study(fake_settings(), show_progress=False)
    # the plain student learns from no teacher, so it trains whatever became of the teacher
    assert sorted(by_key(calls)) == [
        "nnUNetTrainer/fold_1",
        "nnUNetTrainerHLFD/fold_1",
        "nnUNetTrainerStudent/fold_0",
        "nnUNetTrainerStudent/fold_1",
    ]


def test_a_killed_study_stops_its_training_and_the_rerun_continues_it(calls, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_NNUNET_HANG", "nnUNetTrainerStudent/fold_0")
    command = [
        sys.executable,
        "-m",
        "nnunetv2_hlfd.cli",
        "study",
        "-d",
        FAKE_DATASET,
        "-c",
        "2d",
        "-f",
        "0",
        "--students",
        "nnUNetTrainerStudent",
        "--no-benchmark",
        "--threads",
        "1",
    ]
    study = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lock = fold_folder("nnUNetTrainer", 0).parents[1] / "hlfd_study_2d" / "locks" / "nnUNetTrainerStudent__fold_0.json"
    half_way = fold_folder("nnUNetTrainerStudent", 0) / "checkpoint_latest.pth"
    deadline = time.time() + 120
    while not (lock.is_file() and half_way.is_file()) and time.time() < deadline and study.poll() is None:
        time.sleep(0.2)
    assert lock.is_file() and half_way.is_file(), study.communicate()[0]
    training_pid = json.loads(lock.read_text())["pid"]
    study.send_signal(signal.SIGTERM)
    output = study.communicate(timeout=120)[0]
    assert study.returncode != 0 and "interrupted" in output
    with pytest.raises(ProcessLookupError):
        os.kill(training_pid, 0)  # the training was stopped with its study

    monkeypatch.delenv("FAKE_NNUNET_HANG")
    calls.unlink(missing_ok=True)
    run_study(
        StudySettings(FAKE_DATASET, "2d", students=("nnUNetTrainerStudent",), folds=(0,), threads=1, benchmark=False),
        show_progress=False,
    )
    assert list(by_key(calls)) == ["nnUNetTrainerStudent/fold_0"]
    assert "--c" in by_key(calls)["nnUNetTrainerStudent/fold_0"]["argv"]


# ---------------------------------------------------------------------------- workers


def test_cpu_workers_each_get_their_own_cores_and_thread_count(monkeypatch):
    monkeypatch.setattr("nnunetv2_hlfd.study.runner.core_ids", lambda: [0, 1, 2, 3])
    slots = worker_slots(fake_settings(workers=2, threads=2))
    assert [slot.cores for slot in slots] == [(0, 1), (2, 3)]
    assert slots[1].environment()["OMP_NUM_THREADS"] == "2"


def test_more_threads_than_cores_are_refused_naming_the_numbers(monkeypatch):
    monkeypatch.setattr("nnunetv2_hlfd.study.runner.core_ids", lambda: [0, 1])
    with pytest.raises(ValueError, match=r"--workers 2 x --threads 2 = 4 threads, more than the 2 cores"):
        worker_slots(fake_settings(workers=2, threads=2))


def test_a_gpu_named_several_times_runs_that_many_trainings_at_once_on_it():
    slots = worker_slots(fake_settings(device="cuda", gpus=(0, 0, 0)))
    assert [slot.environment() for slot in slots] == [{"CUDA_VISIBLE_DEVICES": "0"}] * 3


def test_cuda_workers_each_see_one_gpu():
    slots = worker_slots(fake_settings(device="cuda", gpus=(0, 3)))
    assert [slot.environment() for slot in slots] == [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "3"}]


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two cores and Linux CPU affinity",
)
def test_parallel_cpu_trainings_run_on_separate_cores(calls):
    run_study(fake_settings(workers=2, folds=(0,)), show_progress=False)
    cores = [tuple(call["cores"]) for call in read_calls(calls)]
    assert all(len(c) == 1 for c in cores) and len(set(cores)) == 2
    assert {call["OMP_NUM_THREADS"] for call in read_calls(calls)} == {"1"}


# ---------------------------------------------------------------------------- commands and status


def test_paper_protocol_saves_probabilities_and_revalidates_a_training_without_them(calls):
    finish("nnUNetTrainer", 0)  # finished, but validated without --npz
    settings = fake_settings(folds=(0,), protocol="paper")
    run_study(settings, show_progress=False)
    done = by_key(calls)
    assert done["nnUNetTrainer/fold_0"]["argv"][-2:] == ["--npz", "--val"]
    assert "--npz" in done["nnUNetTrainerHLFD/fold_0"]["argv"]


def test_a_shortened_study_shortens_the_students_and_leaves_the_teacher_its_own_length(calls):
    settings = fake_settings(epochs=3, iterations=7)
    teacher, student = study_graph(settings)[0], study_graph(settings)[-1]
    command = train_command(settings, teacher, fold_folder("nnUNetTrainer", 0))
    assert command[:6] == ["nnUNetv2_train", FAKE_DATASET, "2d", "0", "-tr", "nnUNetTrainer"]
    assert train_command(settings, student, fold_folder("x", 0))[5] == "nnUNetTrainerHLFD_3epochs_7iterations"


def test_a_teacher_the_user_trained_already_is_used_as_it_is(calls, tmp_path):
    finish("nnUNetTrainer", 0)
    run_study(fake_settings(folds=(0,), epochs=3, iterations=7, seeds=(0,)), show_progress=False)
    done = by_key(calls)
    assert sorted(done) == [
        "nnUNetTrainerHLFD_3epochs_7iterations_seed0/fold_0",
        "nnUNetTrainerStudent_3epochs_7iterations_seed0/fold_0",
    ]
    teacher = tmp_path / "nnUNet_results" / FAKE_DATASET / "nnUNetTrainer__nnUNetPlans__2d"
    assert done["nnUNetTrainerHLFD_3epochs_7iterations_seed0/fold_0"]["HLFD_TEACHER"] == str(teacher)


def test_the_teacher_trains_on_its_own_schedule_and_the_students_learn_from_that_teacher(calls, tmp_path):
    settings = fake_settings(folds=(0,), epochs=3, iterations=7, teacher_epochs=11, teacher_iterations=5, seeds=(0,))
    run = run_study(settings, show_progress=False)
    done = by_key(calls)
    teacher = done["nnUNetTrainer_11epochs_5iterations_seed0/fold_0"]
    assert teacher["argv"][teacher["argv"].index("-tr") + 1] == "nnUNetTrainer_11epochs_5iterations_seed0"
    student = done["nnUNetTrainerHLFD_3epochs_7iterations_seed0/fold_0"]
    assert student["HLFD_TEACHER"] == str(
        tmp_path / "nnUNet_results" / FAKE_DATASET / "nnUNetTrainer_11epochs_5iterations_seed0__nnUNetPlans__2d"
    )
    assert "teacher: 11 epochs x 5 iterations" in run.study_md.read_text()


def test_status_file_lists_every_training_with_its_state_and_wall_time(calls):
    finish("nnUNetTrainer", 0)
    run = run_study(fake_settings(folds=(0,)), show_progress=False)
    status = json.loads((run.output / "status.json").read_text())
    assert status["counts"] == {"done": 3, "running": 0, "queued": 0, "failed": 0, "blocked": 0}
    assert status["trainings"]["nnUNetTrainer/fold_0"]["done_before"] is True
    assert status["trainings"]["nnUNetTrainerHLFD/fold_0"]["wall_s"] > 0
    study_md = run.study_md.read_text()
    assert "| nnUNetTrainerHLFD |" in study_md and "Commit:" in study_md


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 3}, r"--epochs and --iterations go together"),
        ({"teacher_epochs": 3}, r"--teacher-epochs and --teacher-iterations go together"),
        ({"teacher_epochs": 0, "teacher_iterations": 5}, r"--teacher-epochs must be at least 1, got 0"),
        ({"folds": (0, 0)}, r"--folds names an entry twice: 0 0"),
        ({"students": ("nnUNetTrainer",)}, r"trainers \(--teacher and --students\) names an entry twice"),
    ],
)
def test_invalid_grids_are_refused_before_anything_runs(calls, changes, message):
    with pytest.raises(ValueError, match=message):
        run_study(fake_settings(**changes), show_progress=False)
    assert not calls.exists()


def test_unknown_trainer_is_refused_naming_it(calls):
    with pytest.raises(ValueError, match=r"trainer\(s\) not found: nnUNetTrainerHFLD"):
        run_study(fake_settings(students=("nnUNetTrainerHFLD",)), show_progress=False)
    assert not calls.exists()


def test_a_dataset_without_a_tumour_class_is_refused_before_anything_runs(calls, tmp_path):
    dataset_json = tmp_path / "nnUNet_preprocessed" / FAKE_DATASET / "dataset.json"
    dataset_json.write_text(json.dumps({"labels": {"background": 0, "kidney": 1, "cyst": 2}, "file_ending": ".nii.gz"}))
    with pytest.raises(ValueError, match=r"no class of the dataset \(kidney, cyst\) is named tumor or tumour"):
        run_study(fake_settings(), show_progress=False)
    assert not calls.exists()


# ---------------------------------------------------------------------------- submitit


def assert_runs_the_grid_in_order(calls, settings: StudySettings) -> None:
    """The study's six trainings all run, each fold's student starting after its teacher ended."""
    run_study(settings, show_progress=False)
    done = by_key(calls)
    assert len(done) == 6
    for fold in (0, 1):
        assert done[f"nnUNetTrainerHLFD/fold_{fold}"]["start"] >= done[f"nnUNetTrainer/fold_{fold}"]["end"]


def test_submitit_local_executor_runs_the_grid_in_order(calls):
    assert_runs_the_grid_in_order(calls, fake_settings(cluster="local", workers=2))


def test_slurm_jobs_wait_for_their_teachers_job_afterok(tmp_path, monkeypatch):
    """Slurm is not installed here: a recording executor shows what submitit is asked to submit."""
    submitted = []

    class RecordingExecutor:
        def __init__(self, folder, cluster):
            self.parameters = {}

        def update_parameters(self, **parameters):
            self.parameters |= parameters

        def submit(self, function, job):
            submitted.append((job.key, dict(self.parameters.get("slurm_additional_parameters", {}))))
            return type("Job", (), {"job_id": str(len(submitted)), "state": "PENDING"})()

    monkeypatch.setattr("submitit.AutoExecutor", RecordingExecutor)
    backend = SubmititBackend(tmp_path, "slurm", parallel=1, parameters={"timeout_min": 10})
    teacher = backend.submit(type("J", (), {"key": "nnUNetTrainer/fold_0"})(), after=[])
    backend.submit(type("J", (), {"key": "nnUNetTrainerHLFD/fold_0"})(), after=[teacher])
    assert submitted == [("nnUNetTrainer/fold_0", {}), ("nnUNetTrainerHLFD/fold_0", {"dependency": "afterok:1"})]
    assert backend.has_room() and backend.is_queued(teacher)


def test_slot_without_cores_leaves_threads_to_the_cluster():
    assert Slot().environment() == {}


@pytest.mark.skipif(
    not (os.environ.get("HLFD_TEST_SLURM") == "1" and shutil.which("sbatch")),
    reason="opt-in: a reachable Slurm (sbatch on PATH) and HLFD_TEST_SLURM=1",
)
def test_slurm_runs_the_grid_with_afterok_dependencies(calls, tmp_path):
    # the nnU-Net folders are under tmp_path: on a multi-node cluster point --basetemp at a shared file system
    assert_runs_the_grid_in_order(calls, fake_settings(cluster="slurm", slurm_time_min=10))


# ---------------------------------------------------------------------------- repeats


def test_repeats_train_each_student_once_per_seed_against_the_one_teacher(calls, tmp_path):
    run_study(fake_settings(folds=(0, 1), seeds=(3, 4)), show_progress=False)
    done = by_key(calls)
    # one teacher per fold (at its own length: nnU-Net's unseeded run), each student once per seed and fold
    assert sorted(k for k in done if k.startswith("nnUNetTrainer/")) == ["nnUNetTrainer/fold_0", "nnUNetTrainer/fold_1"]
    students = sorted(k for k in done if not k.startswith("nnUNetTrainer/"))
    assert students == sorted(
        f"{student}_seed{seed}/fold_{fold}"
        for student in ("nnUNetTrainerStudent", "nnUNetTrainerHLFD")
        for seed in (3, 4)
        for fold in (0, 1)
    )
    # at its own length the teacher is nnU-Net's own unseeded training
    teacher_folder = tmp_path / "nnUNet_results" / FAKE_DATASET / "nnUNetTrainer__nnUNetPlans__2d"
    assert {done[k]["HLFD_TEACHER"] for k in students} == {str(teacher_folder)}
    # each repeat its own results folder, in nnU-Net's layout
    assert (fold_folder("nnUNetTrainerHLFD_seed4", 1) / "checkpoint_final.pth").is_file()


def test_a_rerun_of_a_replicated_study_trains_only_the_missing_repeats(calls):
    settings = fake_settings(folds=(0,), seeds=(0, 1))
    for trainer in ("nnUNetTrainer", "nnUNetTrainerStudent_seed0", "nnUNetTrainerHLFD_seed0"):
        finish(trainer, 0)
    run_study(settings, show_progress=False)
    assert sorted(by_key(calls)) == ["nnUNetTrainerHLFD_seed1/fold_0", "nnUNetTrainerStudent_seed1/fold_0"]


def test_seeded_shortened_variants_are_named_for_both(calls):
    settings = fake_settings(epochs=3, iterations=7, seeds=(2,))
    student = next(t for t in study_graph(settings) if t.trainer == "nnUNetTrainerHLFD")
    command = train_command(settings, student, fold_folder("x", 0))
    assert command[5] == "nnUNetTrainerHLFD_3epochs_7iterations_seed2"


@pytest.mark.parametrize(
    "seeds, message", [((1, 1), r"--seeds names a seed twice: 1 1"), ((-1,), r"seeds must be 0 or more, got -1")]
)
def test_bad_seeds_are_refused_before_anything_runs(calls, seeds, message):
    with pytest.raises(ValueError, match=message):
        run_study(fake_settings(seeds=seeds), show_progress=False)
    assert not calls.exists()


def test_a_replicated_study_writes_its_runs_curves_and_run_level_tests(calls, monkeypatch):
    monkeypatch.setenv("FAKE_NNUNET_TUMOUR_DICE", "nnUNetTrainerHLFD=0.6")
    run = run_study(fake_settings(folds=(0, 1), seeds=(0, 1, 2)), show_progress=False)
    rows = (run.output / "runs.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 + 2 * 2 * 3  # header, two teachers, two students x two folds x three seeds
    assert "nnUNetTrainerHLFD,1,2,0.9000,0.6000,1," in rows[-1]
    study_md = run.study_md.read_text()
    # HLFD better in all six (fold, seed) pairs: the exact one-sided permutation p is 1/64, Fisher's 6/6 vs 0/6
    assert "| primary | HLFD | final tumor DSC | greater | 6 | 0.600 | 0.000 | 0.016 |" in study_md
    assert (
        "| secondary: onset | HLFD | onset (tumor pseudo-Dice >= 0.2) | greater | 6 | 6/6 | 0/6 | 0.001 |" in study_md
    )
    assert "## Is the teacher worth distilling?" in study_md
    curves = read_png(run.output / "learning_curves.png")
    assert curves.shape[:2] == (552, 1440)  # two classes' panels, 6 x 4.6 inches each at 120 dpi
    # each panel plots the variants' curves in colour (a blank one has grey axes and text only)
    assert all(coloured_fraction(panel) > 0.002 for panel in grid_cells(curves, 2))


def test_a_repeat_trains_student_by_student_so_an_early_stop_leaves_whole_students():
    graph = study_graph(fake_settings(folds=(0, 1), seeds=(0, 1)))
    assert [t.key for t in graph] == [
        "nnUNetTrainer/fold_0",  # at its own length the teacher is unseeded
        "nnUNetTrainer/fold_1",
        *[
            f"{student}/fold_{fold}/seed_{seed}"
            for seed in (0, 1)
            for student in ("nnUNetTrainerStudent", "nnUNetTrainerHLFD")
            for fold in (0, 1)
        ],
    ]


def test_report_only_records_the_finished_runs_and_trains_nothing(calls, monkeypatch):
    monkeypatch.setenv("FAKE_NNUNET_TUMOUR_DICE", "nnUNetTrainerHLFD=0.6")
    run_study(fake_settings(folds=(0,), seeds=(0,)), show_progress=False)
    trained = len(read_calls(calls))
    run = run_study(fake_settings(folds=(0,), seeds=(0, 1), report_only=True), show_progress=False)
    assert len(read_calls(calls)) == trained  # seed 1 is not trained
    rows = (run.output / "runs.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 and all(",0," in row for row in rows[1:])  # the teacher and seed 0's students
    status = json.loads((run.output / "status.json").read_text())
    assert status["counts"]["queued"] == 2 and status["counts"]["done"] == 3


def test_repeats_below_one_are_refused_with_exit_status_2_and_no_traceback(calls, capsys):
    from nnunetv2_hlfd.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["study", "-d", FAKE_DATASET, "-c", "2d", "--repeats", "0"])
    assert stopped.value.code == 2
    assert "--repeats must be at least 1, got 0" in capsys.readouterr().err and not calls.exists()


# (the study's students, each distilled student's plain reference, the primary family): sizes, then families
PAIRINGS = {
    "sizes": (
        (
            "nnUNetTrainerStudent",
            "nnUNetTrainerHLFD",
            "nnUNetTrainerStudentSmall",
            "nnUNetTrainerHLFDSmall",
            "nnUNetTrainerKD",
            "nnUNetTrainerKDSmall",
        ),
        {
            "nnUNetTrainerHLFD": "nnUNetTrainerStudent",
            "nnUNetTrainerHLFDSmall": "nnUNetTrainerStudentSmall",
            "nnUNetTrainerKD": "nnUNetTrainerStudent",
            "nnUNetTrainerKDSmall": "nnUNetTrainerStudentSmall",
        },
        ("nnUNetTrainerHLFD", "nnUNetTrainerHLFDSmall"),
    ),
    "inverted-residual family": (
        (
            "nnUNetTrainerStudent",
            "nnUNetTrainerStudentMobile",
            "nnUNetTrainerHLFDMobile",
            "nnUNetTrainerHLFD",
            "nnUNetTrainerKDMobile",
            "nnUNetTrainerStudentMobileSmall",
            "nnUNetTrainerHLFDMobileSmall",
        ),
        {
            "nnUNetTrainerHLFDMobile": "nnUNetTrainerStudentMobile",
            "nnUNetTrainerHLFD": "nnUNetTrainerStudent",
            "nnUNetTrainerKDMobile": "nnUNetTrainerStudentMobile",
            "nnUNetTrainerHLFDMobileSmall": "nnUNetTrainerStudentMobileSmall",
        },
        ("nnUNetTrainerHLFDMobile", "nnUNetTrainerHLFD", "nnUNetTrainerHLFDMobileSmall"),
    ),
}


@pytest.mark.parametrize("students, references, primary", PAIRINGS.values(), ids=PAIRINGS)
def test_each_distilled_student_is_paired_with_the_plain_student_of_its_family_and_size(students, references, primary):
    settings = fake_settings(students=students)
    roles = study_roles(settings, student_classes(settings))
    assert roles.references == references and roles.primary == primary
