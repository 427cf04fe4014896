"""Conversion of KiTS19/21/23 and LiTS into nnU-Net raw datasets.

One module per source dataset (kits19, kits21, kits23, lits) declares a DatasetSpec and gets its converter and
console command from command_line.entry_points. The machinery, one concern a module:

* dataset_spec: DatasetSpec, what a dataset module declares;
* discovery: finding the cases (Case, Discovery, discover_case_folders);
* label_layouts: the label layouts and cyst choices (label_layout, CYST_CHOICES);
* volumes: reading and checking one case's volumes, and writing them;
* case_jobs: running every case, in worker processes, with a progress bar;
* conversion: convert, one conversion from options to the dataset folder, written through
  nnunetv2_hlfd.dataset_writers.raw_dataset (atomic writing, recovery of killed runs);
* command_line: the shared options and exit status;
* conversion_error: ConversionError, a nnunetv2_hlfd.utilities.problems.ProblemListError.
"""
