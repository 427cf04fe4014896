"""`nnunetv2_hlfd speed`'s refusals: every method it cannot time is named at once, before any plan is made."""

import pytest

from nnunetv2_hlfd import cli


def test_unknown_and_non_distillation_methods_are_refused_together_before_timing(capsys, monkeypatch):
    from nnunetv2_hlfd.speed import step_time

    monkeypatch.setattr(step_time, "measure_setting", lambda *a, **k: pytest.fail("timed despite the refusal"))
    with pytest.raises(SystemExit) as stopped:
        cli.main(["speed", "--methods", "HLFD,Student,NoSuchMethod", "--configurations", "2d", "--device", "cpu"])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and "Traceback" not in error
    assert "--methods names trainers that cannot be timed:" in error
    assert "nnUNetTrainerStudent is not a distillation trainer" in error
    assert "no trainer class named 'nnUNetTrainerNoSuchMethod'" in error
    assert error.count("\n  - ") == 2  # HLFD, a distillation trainer, is not among them
