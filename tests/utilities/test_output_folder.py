"""The output folder of every command: nothing of the user's is deleted, and an interrupted write leaves
no half folder."""

import json

import pytest

from nnunetv2_hlfd.utilities.output_folder import MARKER, OutputFolderError, claim, output_problems, read_marker, staged


def users_folder(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.tex").write_text(r"\documentclass{book}")
    return folder


def written(tmp_path, command="benchmark", files=("report.md",)):
    with staged(tmp_path / "out", command) as staging:
        for name in files:
            (staging / name).write_text(name)
    return tmp_path / "out"


def written_nested(tmp_path):
    with staged(tmp_path / "out", "benchmark") as staging:
        (staging / "figures").mkdir()
        (staging / "figures" / "curves.png").write_bytes(b"")
    return tmp_path / "out"


def test_a_staged_output_is_marked_and_renamed_into_place_leaving_no_sibling(tmp_path):
    output = written(tmp_path)
    assert (output / "report.md").read_text() == "report.md"
    assert read_marker(output, "benchmark") == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("interruption", [RuntimeError("scoring failed"), KeyboardInterrupt()])
def test_an_interrupted_write_leaves_no_half_folder(tmp_path, interruption):
    with pytest.raises(type(interruption)):
        with staged(tmp_path / "out", "benchmark") as staging:
            (staging / "per_case.csv").write_text("half of it")
            raise interruption
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_write_keeps_the_earlier_output(tmp_path):
    output = written(tmp_path, files=("earlier.md",))
    with pytest.raises(RuntimeError):
        with staged(output, "benchmark") as staging:
            (staging / "report.md").write_text("half of it")
            raise RuntimeError("scoring failed")
    assert sorted(p.name for p in output.iterdir()) == sorted([MARKER, "earlier.md"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_new_output_replaces_the_earlier_one_whole(tmp_path):
    output = written(tmp_path, files=("earlier.md",))
    written(tmp_path, files=("report.md",))
    assert sorted(p.name for p in output.iterdir()) == sorted([MARKER, "report.md"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_unmarked_folder_is_refused_even_with_overwrite(tmp_path):
    folder = users_folder(tmp_path)
    [problem] = output_problems(folder, "benchmark", overwrite=True)
    assert f"{folder} is not empty and was not written by nnunetv2_hlfd benchmark" in problem
    assert "not even with --overwrite" in problem and "choose another folder with -o" in problem


def test_another_commands_output_is_refused_even_with_overwrite(tmp_path):
    output = written(tmp_path, command="deployment")
    [problem] = output_problems(output, "benchmark", overwrite=True)
    assert "was not written by nnunetv2_hlfd benchmark" in problem


def test_an_earlier_output_needs_overwrite(tmp_path):
    output = written(tmp_path)
    [problem] = output_problems(output, "benchmark", overwrite=False)
    assert "pass --overwrite to replace this earlier output of nnunetv2_hlfd benchmark" in problem
    assert output_problems(output, "benchmark", overwrite=True) == []


def test_a_missing_or_empty_folder_may_be_written(tmp_path):
    (tmp_path / "empty").mkdir()
    assert output_problems(tmp_path / "empty", "benchmark", overwrite=False) == []
    assert output_problems(tmp_path / "missing", "benchmark", overwrite=False) == []


def test_a_file_is_not_an_output_folder(tmp_path):
    (tmp_path / "file").write_text("")
    [problem] = output_problems(tmp_path / "file", "benchmark", overwrite=True, option="--workdir")
    assert "--workdir" in problem and "is not a folder" in problem


def test_claim_marks_a_new_folder_with_its_record(tmp_path):
    folder = claim(tmp_path / "study", "study", overwrite=False, record={"folds": [0]})
    assert read_marker(folder, "study") == {"folds": [0]}
    assert json.loads((folder / MARKER).read_text())["written_by"] == "nnunetv2_hlfd study"


def test_claim_keeps_an_earlier_output_to_continue_in_it(tmp_path):
    folder = claim(tmp_path / "study", "study", overwrite=False)
    (folder / "status.json").write_text("{}")
    claim(folder, "study", overwrite=False)
    assert (folder / "status.json").is_file()


def test_claim_with_overwrite_removes_an_earlier_output_first(tmp_path):
    folder = claim(tmp_path / "demo", "demo", overwrite=False, record={"cases": 16})
    (folder / "stale.txt").write_text("from an earlier demo")
    claim(folder, "demo", overwrite=True, record={"cases": 4})
    assert not (folder / "stale.txt").exists() and read_marker(folder, "demo") == {"cases": 4}


def test_claim_refuses_an_unmarked_folder_even_with_overwrite(tmp_path):
    folder = users_folder(tmp_path)
    with pytest.raises(OutputFolderError, match="not even with --overwrite"):
        claim(folder, "study", overwrite=True)
    assert (folder / "thesis.tex").is_file() and not (folder / MARKER).exists()


def test_overwrite_refuses_an_earlier_output_holding_a_file_put_there_since(tmp_path):
    output = written(tmp_path)
    (output / "thesis.tex").write_text(r"\documentclass{book}")
    [problem] = output_problems(output, "benchmark", overwrite=True)
    assert "holds what nnunetv2_hlfd benchmark did not write there: thesis.tex;" in problem
    assert "report.md" not in problem and "move that out of it first" in problem


def test_a_folder_put_into_an_earlier_output_is_named_once_and_a_file_in_a_written_folder_by_its_path(tmp_path):
    output = written_nested(tmp_path)
    (output / "notes").mkdir()
    for name in ("a.txt", "b.txt"):
        (output / "notes" / name).write_text(name)
    (output / "figures" / "mine.png").write_bytes(b"")
    [problem] = output_problems(output, "benchmark", overwrite=True)
    assert "did not write there: figures/mine.png, notes;" in problem


def test_a_staged_output_with_subfolders_can_be_overwritten(tmp_path):
    output = written_nested(tmp_path)
    assert output_problems(output, "benchmark", overwrite=True) == []


def test_an_earlier_output_whose_marker_lists_no_files_is_not_overwritten(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / MARKER).write_text(json.dumps({"written_by": "nnunetv2_hlfd benchmark"}))  # as older versions wrote it
    (output / "report.md").write_text("")
    [problem] = output_problems(output, "benchmark", overwrite=True)
    assert "does not list what nnunetv2_hlfd benchmark wrote there" in problem
    assert "delete the folder yourself" in problem
