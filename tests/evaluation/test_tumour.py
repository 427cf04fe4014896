"""One tumour rule: the benchmark and the study find the same class, or both find none."""

import pytest

from nnunetv2_hlfd.evaluation.benchmark import tumour_class as benchmark_tumour
from nnunetv2_hlfd.evaluation.model_folders import BenchmarkInputError
from nnunetv2_hlfd.evaluation.tumour import tumour_name
from nnunetv2_hlfd.study.runs import tumour_class as study_tumour
from nnunetv2_hlfd.utilities.problems import UserFacingError


class Labels:
    """What the benchmark reads of a dataset to find its tumour: the class names by label."""

    name = "Dataset991_Test"

    def __init__(self, names: list[str]):
        self.names = names

    def class_names(self) -> dict:
        return {label: name for label, name in enumerate(self.names, start=1)}


@pytest.mark.parametrize(
    "names, tumour",
    [
        (["kidney", "tumor", "cyst"], "tumor"),
        (["liver", "Tumour"], "Tumour"),
        (["kidney", "tumor_core", "lesion"], None),  # named like a tumour is not named tumour
        (["kidney", "cyst"], None),  # and the last class is no stand-in
    ],
)
def test_the_benchmark_and_the_study_find_the_same_tumour_or_both_none(names, tumour):
    assert tumour_name(names) == tumour
    found = benchmark_tumour(Labels(names), None, required=False)
    assert (None if found is None else Labels(names).class_names()[found]) == tumour
    if tumour is None:
        with pytest.raises(UserFacingError, match="named tumor or tumour"):
            study_tumour(names)
        with pytest.raises(BenchmarkInputError, match="no class named tumor or tumour"):
            benchmark_tumour(Labels(names), None, required=True)
    else:
        assert study_tumour(names) == tumour
