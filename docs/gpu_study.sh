#!/usr/bin/env bash
# Measurement 6 of docs/RESULTS.md (the second-edition study), on one GPU: the same declared grid (teacher on
# its own schedule of 100 x 20 iterations, the default and Small students without and with HLFD, and KD, on 50 x
# 20 iterations), but over all five folds and more seeds, several small trainings at once on the one GPU.
#
#   docs/gpu_study.sh KITS19_DATA [WORK_FOLDER] [SEEDS] [WORKERS]
#
# KITS19_DATA: a kits19 clone's data/ folder (or a folder of case_XXXXX_segmentation.nii.gz); the first 100 cases
# are converted as Measurement 6 converted them. SEEDS: the repeats per fold (default "0 1": 10 pairs per size);
# WORKERS: trainings at once on GPU 0 (default 8). Rerunning continues where it stopped (nnU-Net's checkpoints).
set -euo pipefail
DATA=${1:?usage: docs/gpu_study.sh KITS19_DATA [WORK_FOLDER] [SEEDS] [WORKERS]}
WORK=$(realpath -m "${2:-gpu_study}")
SEEDS=${3:-0 1}
WORKERS=${4:-8}
export nnUNet_raw=$WORK/nnUNet_raw nnUNet_preprocessed=$WORK/nnUNet_preprocessed nnUNet_results=$WORK/nnUNet_results
# a few augmentation processes per training: WORKERS trainings share the machine's cores
export nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-2}
mkdir -p "$nnUNet_raw" "$nnUNet_preprocessed" "$nnUNet_results"
PLANS=$nnUNet_preprocessed/Dataset064_KiTS19Geometry/nnUNetPlans.json
if [ ! -f "$PLANS" ]; then
  hlfd_convert_kits19_geometry "$DATA" --cases 100 -d 64
  nnUNetv2_plan_and_preprocess -d 64 -c 2d -np 8
  # every model gets batch 8, as on the CPU (nnU-Net plans a GPU batch of 210 patches of 112 x 48)
  python3 -c "import json,sys; p=sys.argv[1]; d=json.load(open(p)); d['configurations']['2d']['batch_size']=8; json.dump(d, open(p,'w'), indent=4)" "$PLANS"
fi
GPUS=$(for _ in $(seq "$WORKERS"); do printf '0 '; done)
COMMON=(-d 64 -c 2d -f 0 1 2 3 4 --teacher nnUNetTrainer --teacher-epochs 100 --teacher-iterations 20
  --epochs 50 --iterations 20 -device cuda --gpus $GPUS --no-benchmark)
STUDENTS=(nnUNetTrainerStudent nnUNetTrainerHLFD nnUNetTrainerStudentSmall nnUNetTrainerHLFDSmall
  nnUNetTrainerKD nnUNetTrainerKDSmall)
# shellcheck disable=SC2086
nnunetv2_hlfd study "${COMMON[@]}" --students "${STUDENTS[@]}" --seeds $SEEDS -o "$WORK/study"
echo "study.md, runs.csv and learning_curves.png in $WORK/study"
