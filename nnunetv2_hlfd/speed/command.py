"""Arguments of `nnunetv2_hlfd speed` and what it prints."""

from __future__ import annotations

from nnunetv2_hlfd.utilities.problems import ProblemListError, UserFacingError

CONFIGURATIONS = ("2d", "3d_fullres")
PLANNER_NAMES = ("default", "ResEncL")


def add_parser(subparsers) -> None:
    speed = subparsers.add_parser(
        "speed",
        help="time the student's step, each distillation method's step, the "
        "teacher's forward pass and the terms, on nnU-Net's own plans",
    )
    speed.add_argument("--configurations", nargs="+", default=list(CONFIGURATIONS), choices=CONFIGURATIONS)
    speed.add_argument(
        "--planners",
        nargs="+",
        default=list(PLANNER_NAMES),
        choices=PLANNER_NAMES,
        help="teacher plans: nnU-Net's default and/or ResEnc-L (default both)",
    )
    speed.add_argument(
        "--methods",
        default="HLFD",
        help="comma-separated distillation trainers, e.g. HLFD,KD (nnUNetTrainer<name>, found as "
        "nnU-Net finds trainers; the first is broken down; default HLFD)",
    )
    speed.add_argument(
        "--patch-factor",
        type=float,
        default=1.0,
        help="scale each patch axis (kept a multiple of the total stride), e.g. 0.25 on a CPU",
    )
    speed.add_argument("--batch-size", type=int, default=None, help="override the plans' batch size")
    speed.add_argument(
        "--members",
        type=int,
        nargs="+",
        default=[1],
        help="teacher networks, e.g. 1 3 5: more than one is an ensemble teacher, measured with all "
        "members every step and with one member per step in turn (default 1)",
    )
    speed.add_argument(
        "--levers",
        default="bf16,fp16,channels_last,encoder_only",
        help="comma-separated levers to measure as well ('' for none)",
    )
    speed.add_argument("--warmup", type=int, default=2, help="rounds discarded before timing (default 2)")
    speed.add_argument("--steps", type=int, default=10, help="timed rounds (default 10)")
    speed.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default torch's); 1 on a CPU shared with other jobs, where "
        "spinning OpenMP threads slow every step many-fold",
    )
    speed.add_argument("--device", default=None, choices=("cpu", "cuda"), help="default: cuda if present, else cpu")
    speed.add_argument(
        "--inference",
        action="store_true",
        help="instead of training steps, time one forward pass on one patch (eval, no gradients) of the "
        "teacher and of each student family's default student (--methods, --members, --levers and "
        "--batch-size do not apply)",
    )


def run(args) -> None:
    import torch

    from nnunetv2_hlfd.speed.step_time import LEVERS, Setting
    from nnunetv2_hlfd.utilities.timing import default_device

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    levers = tuple(lever.strip() for lever in args.levers.split(",") if lever.strip())
    unknown = set(levers) - set(LEVERS)
    if any(m < 1 for m in args.members):
        raise UserFacingError(f"--members {args.members}: each member count must be at least 1")
    if unknown or not methods:
        raise UserFacingError(
            f"unknown levers {sorted(unknown)} (known: {', '.join(LEVERS)})" if unknown else "--methods names no method"
        )
    device = torch.device(args.device or default_device())
    grid = [(c, p) for c in args.configurations for p in args.planners]
    if args.inference:
        from nnunetv2_hlfd.speed.inference import inference_table, measure_inference

        settings = [Setting(p, c, args.patch_factor) for c, p in grid]
        results = measure_each(settings, lambda s: measure_inference(s, device, args.warmup, args.steps), args, device)
        print(inference_table(results))
        return
    from nnunetv2_hlfd.speed.report import markdown_report
    from nnunetv2_hlfd.speed.step_time import measure_setting

    classes = method_classes(methods)  # before any plan is made: a misspelt last method would fail minutes in
    settings = [Setting(p, c, args.patch_factor, args.batch_size, members=m) for c, p in grid for m in args.members]
    results = measure_each(
        settings, lambda s: measure_setting(s, classes, device, levers, args.warmup, args.steps), args, device
    )
    print(markdown_report(results, methods))


def measure_each(settings: list, measure, args, device) -> list:
    """`measure` of each setting in turn, under the requested torch threads, saying which is done."""
    from nnunetv2_hlfd.utilities.timing import torch_threads

    with torch_threads(args.threads):
        print(describe_machine(device))
        results = []
        for setting in settings:
            results.append(measure(setting))
            print(f"measured {setting.name}", flush=True)
    return results


def method_classes(methods: list[str]) -> dict[str, type]:
    """Each method's distillation trainer, searched once for every setting; one refusal listing each method
    that is not one nnU-Net finds."""
    from nnunetv2_hlfd.speed.offline_trainers import method_trainer

    classes, problems = {}, []
    for method in methods:
        try:
            classes[method] = method_trainer(method)
        except UserFacingError as problem:
            problems.append(str(problem))
    if problems:
        raise ProblemListError(problems, headline="--methods names trainers that cannot be timed:")
    return classes


def describe_machine(device) -> str:
    import torch

    from nnunetv2_hlfd.utilities.provenance import hardware_name, software_versions

    versions = ", ".join(f"{name} {version}" for name, version in software_versions().items())
    return f"device {device.type} ({hardware_name(device)}), {torch.get_num_threads()} torch threads, {versions}"
