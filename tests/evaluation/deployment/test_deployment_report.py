"""The deployment comparison's report, on constructed results (no nnU-Net folders)."""


def test_the_deployment_report_names_its_dsc_convention_and_n():
    from nnunetv2_hlfd.evaluation.deployment.comparison import render_report

    record = {
        "name": "teacher ensemble",
        "trainer": "nnUNetTrainer",
        "folds": [0],
        "mirroring": False,
        "mirror_axes": None,
        "passes_per_window": 1,
        "dsc": {"tumor": {"mean": 0.8, "n": 6}},
        "volume_latency_s": 1.0,
        "volume_peak_memory_mib": 300.0,
        "process_peak_memory_mib": 400.0,
        "weights_mib": 230.0,
        "process_cuda_peak_mib": None,
        "speedup_vs_ensemble": 1.0,
        "speed_vs_ensemble": "reference",
    }
    report = {
        "dataset": "D",
        "configuration": "2d",
        "n_cases": 10,
        "test_images": "i",
        "test_labels": "l",
        "training_case_sources": ["s"],
        "classes": {"tumor": "2"},
        "configurations": [record],
        "timed": "t",
        "device": "cpu",
        "hardware": "h",
        "threads": 1,
        "repetitions": 6,
        "memory_measure": "m",
        "command": "c",
        "versions": {},
        "nnunetv2_hlfd_commit": "x",
    }
    text = render_report(report)
    assert "DSC convention: nnU-Net's, a class absent from both prediction and label has no value" in text
    assert "0.800 (n=6)" in text and "10 cases" in text


def test_the_deployment_report_counts_the_weights_in_its_memory():
    from nnunetv2_hlfd.evaluation.deployment.comparison import results_table
    from nnunetv2_hlfd.evaluation.deployment.memory import MEMORY_COUNTED

    record = {
        "name": "teacher ensemble",
        "trainer": "nnUNetTrainer",
        "folds": [0, 1],
        "mirroring": False,
        "mirror_axes": None,
        "passes_per_window": 2,
        "dsc": {},
        "volume_latency_s": 1.0,
        "volume_peak_memory_mib": 35.0,
        "process_peak_memory_mib": 313.0,
        "weights_mib": 230.0,
        "process_cuda_peak_mib": None,
        "speedup_vs_ensemble": 1.0,
        "speed_vs_ensemble": "reference",
    }
    table = results_table({"classes": {}, "configurations": [record]})
    assert "process peak MiB (weights + working memory) | weights MiB | torch peak MiB during the call" in table
    assert "| 313 | 230.0 | 35.0 |" in table
    assert "loads the configuration's weights" in MEMORY_COUNTED
