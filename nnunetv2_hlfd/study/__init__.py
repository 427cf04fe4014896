"""`nnunetv2_hlfd study`: a teacher and its students trained over folds with nnU-Net's own commands, then
benchmarked. `run_study(StudySettings(...))` is the Python entry point; `command` holds the command line."""
