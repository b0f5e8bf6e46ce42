"""Command line: `python -m shared train|sweep|finetune|report|estimate|bench ...`, a thin layer over the notebooks' functions.

    python -m shared train --data DIR [--input-size S] [--epochs E] [--batch-size B] [--set key=value ...] [--test] [--json FILE]
    python -m shared sweep --data DIR --count N [--method bayes|random|grid] [--input-size S] [--epochs E] [--sweep-id ID | --new] [--runs FILE] [--json FILE]
    python -m shared finetune --data DIR --model NAME --strategy head|first_k|last_k|full [--k K] [--epochs E] [--input-size S] [--random-init] [--test] [--json FILE]
    python -m shared report [--outputs DIR] [--html FILE] [--online | --offline]
    python -m shared estimate [--data DIR] [--count N] [--input-size S]
    python -m shared bench [--data DIR] [--input-size S] [--batch-size B] [--epochs E] [--configs light,heavy] [--json FILE]

Bad input (a setting, a path, a dataset, missing weights) stops before any long work with one line,
`error: <message>`, and exit status 1: among them an output path that is another output or an input of the
same command (`--json` over the checkpoint or the runs table). stdout carries the result's JSON alone;
progress goes to stderr. `bench` is a thin entry to `benchmarks/bench.py`, a tool beside this package.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import sys
from pathlib import Path

from .model import CNNConfig, ConfigError
from .runtime import (BEST_CHECKPOINT, BEST_RESULT, OUTPUT_DIR, SWEEP_RUNS, UserError, cache_dir, check_distinct_paths,
                      check_output_file, save_json)
from .train import TrainConfig, check_rgb


def _coerce(text: str, default, annotation: str):
    """Turn `--set` text into the type of the field it sets."""
    if isinstance(default, bool) or "bool" in annotation:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "1", "yes")
    if isinstance(default, (tuple, list)):
        return tuple(int(v) for v in text.split(","))
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return None if text.lower() == "none" else text


def parse_overrides(pairs: list[str]) -> tuple[dict, dict]:
    """`key=value` strings -> (CNNConfig kwargs, TrainConfig kwargs); unknown keys are an error."""
    fields = {cls: {f.name: f for f in dataclasses.fields(cls)} for cls in (CNNConfig, TrainConfig)}
    out = {CNNConfig: {}, TrainConfig: {}}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        owner = next((cls for cls in fields if key in fields[cls]), None)
        if owner is None:
            valid = sorted(set(fields[CNNConfig]) | set(fields[TrainConfig]))
            raise ConfigError(f"unknown --set key {key!r}; valid keys: {', '.join(valid)}")
        field = fields[owner][key]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        try:
            out[owner][key] = _coerce(value, default, str(field.type))
        except ValueError as err:
            raise ConfigError(f"--set {key}: {err}") from None
    return out[CNNConfig], out[TrainConfig]


# What each command writes where (runtime.JSON_KINDS, TORCH_KINDS): a file of any other kind is never replaced.
OUTPUT_KINDS = {"--json": "{command} result", "--checkpoint": "checkpoint", "--runs": "runs table",
                "--html": "report page"}


def check_paths(args) -> None:
    """Before any work: every output path writable, of the kind the command writes, and distinct from the other
    outputs and from the inputs (named as the user knows them)."""
    inputs = {"--data": getattr(args, "data", None), "the image cache": cache_dir()}
    outputs = {"--json": getattr(args, "json", None)}
    if args.command == "train":
        outputs = {"--checkpoint": args.checkpoint, **outputs}
    if args.command == "sweep":  # the runs table is read and appended to: an output that must not be replaced
        outputs = {"--runs (the runs table)": args.runs, **outputs}
    if args.command == "report":
        if not args.outputs.is_dir():  # checked before check_output_file makes the --html folder
            raise UserError(f"--outputs {args.outputs} is not a folder; give the outputs folder of a `make run`")
        outputs = {"--html": report_html_path(args)}
        inputs = {"--outputs": args.outputs, **{f"the report's input {name}": args.outputs / name
                                                for name in (SWEEP_RUNS.name, BEST_CHECKPOINT.name, BEST_RESULT.name)}}
    check_distinct_paths(outputs, inputs)
    for flag, path in outputs.items():
        if path:
            flag = flag.split()[0]
            check_output_file(path, flag, OUTPUT_KINDS[flag].format(command=args.command))


def check_numbers(args) -> None:
    """Refuse sizes and counts out of range in every command, the way the configs word it. An explicit 0 is refused,
    never read as "not given"; `sweep --count 0` changes nothing, which is allowed (an estimate of no run is not)."""
    at_least = {"epochs": 1, "batch_size": 1, "count": 1 if args.command == "estimate" else 0}
    for name, least in at_least.items():
        value = getattr(args, name, None)
        if value is not None and value < least:
            raise ConfigError(f"{name} must be >= {least}, got {value}")
    if getattr(args, "input_size", None) is not None and args.command != "finetune":  # finetune: the weights' check
        CNNConfig(input_size=args.input_size)  # its own check and message (five 2x2 pools need 32 px)


def cmd_train(args) -> dict:
    from .data import find_data
    from .train import train
    cnn_kwargs, train_kwargs = parse_overrides(args.set)
    for kwargs, key in [(cnn_kwargs, "input_size"), (train_kwargs, "epochs"), (train_kwargs, "batch_size")]:
        if getattr(args, key) is not None:  # an explicit 0 must reach the configs' checks, not become the default
            kwargs[key] = getattr(args, key)
    cfg, tcfg = CNNConfig(**cnn_kwargs), TrainConfig(**train_kwargs)  # settings first: no data is touched yet
    check_rgb(cfg)
    result = train(cfg, find_data(args.data), tcfg, test=args.test, checkpoint=args.checkpoint)
    return require_finite(result.to_dict())


def require_finite(result: dict) -> dict:
    """NaN or inf never leaves in a result that exits 0 (an accuracy of no image, a diverged loss)."""
    bad = {key: value for key, value in result.items()
           if key.endswith(("_acc", "_loss")) and isinstance(value, float) and not math.isfinite(value)}
    if bad:
        raise UserError(f"the run ended with {', '.join(f'{k} = {v}' for k, v in bad.items())}; no result "
                        f"is written from it")
    return result


def cmd_sweep(args) -> dict:
    """Start a sweep, or continue one (`--sweep-id`, offline too); the result holds all its runs so far."""
    from .data import find_data
    from .sweep import run_sweep
    if args.new and args.sweep_id:
        raise UserError(f"--new starts a new sweep and --sweep-id {args.sweep_id} continues one; give one of them")
    return run_sweep(find_data(args.data), count=args.count, method=args.method, input_size=args.input_size,
                     epochs=args.epochs, sweep_id="new" if args.new else args.sweep_id, path=args.runs)


def cmd_finetune(args) -> dict:
    from .finetune import run_finetune
    if args.k is not None and args.strategy not in ("first_k", "last_k"):
        raise ConfigError(f"--k is used by first_k and last_k only, not by {args.strategy}")
    return require_finite(run_finetune(args.data, args.model, args.strategy, k=args.k, epochs=args.epochs,
                                       input_size=args.input_size, test=args.test, allow_random=args.random_init))


def report_html_path(args) -> Path:
    return args.html or args.outputs / "report.html"


def cmd_report(args) -> dict:
    """The W&B report (online; None: when a W&B key is accepted) and its offline HTML copy, from --outputs."""
    from .report import run_report
    return run_report(outputs=args.outputs, html=report_html_path(args), online=args.online)


def cmd_estimate(args) -> dict:
    """The full sweep's compute and time on this machine (`make run` prints it first); with `--gpu-memory N`, the
    memory plan of the sweep's heaviest configs on an N GiB GPU instead (no data, no device)."""
    from .data import find_data, is_demo
    from .estimate import estimate_sweep, memory_plan, sweep_pflop, t4_prediction
    from .sweep import sweep_config
    config = sweep_config("bayes", args.input_size)
    print(t4_prediction(sweep_pflop(config, args.count)), file=sys.stderr)
    if args.gpu_memory:
        return {"gpu_memory_gib": args.gpu_memory, "memory_plan": memory_plan(config, args.gpu_memory)}
    root = find_data(args.data)
    if is_demo(root):
        print("Demo data: Part-A/02 runs its small demo sweep (minutes on a CPU) and prints its own estimate; "
              "the full sweep needs the real data.", file=sys.stderr)
        return {"estimate": False, "data": str(root), "demo": True}
    result = estimate_sweep(root, config, args.count)
    print(result["describe"], file=sys.stderr)
    return result


def cmd_bench(args) -> dict:
    """The bench is a tool beside the package (benchmarks/), imported only here."""
    from benchmarks.bench import run_bench
    configs = tuple(args.configs.split(",")) if args.configs else None
    return run_bench(args.data, input_size=args.input_size, batch_size=args.batch_size, epochs=args.epochs,
                     configs=configs, compile=args.compile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    # Options several commands share (a parent's options are shared objects: no command sets their defaults).
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", help="folder holding train/ and val/ (default: find it, else demo data)")
    result = argparse.ArgumentParser(add_help=False)
    result.add_argument("--json", help="write the result here (default: stdout)")
    budget = argparse.ArgumentParser(add_help=False)
    budget.add_argument("--input-size", type=int)
    budget.add_argument("--epochs", type=int)

    p = commands.add_parser("train", parents=[data, budget, result], help="train one Part A config")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any CNNConfig or TrainConfig field, e.g. filters=32,64,64,128,128 batch_norm=false")
    p.add_argument("--test", action="store_true", help="also evaluate on DIR/val (the test set)")
    p.add_argument("--checkpoint", help="save the best epoch's weights here")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("sweep", parents=[data, budget],
                            help="run or continue a W&B sweep (online with a key, else offline)")
    p.add_argument("--count", type=int, required=True, help="runs to add (0: change nothing)")
    p.add_argument("--method", choices=["bayes", "random", "grid"], help="a new sweep's method (default bayes)")
    p.add_argument("--sweep-id", help="continue this sweep: a local-... id offline, or join a W&B sweep online")
    p.add_argument("--new", action="store_true", help="start a new sweep (default: continue an unfinished sweep "
                                                       "of the same config, data and mode, if there is one)")
    p.add_argument("--runs", type=Path, default=SWEEP_RUNS,
                   help="the runs table every run is appended to (default outputs/sweep_runs.json)")
    p.add_argument("--json", help="also write this sweep's runs (earlier sessions' included) here")
    p.set_defaults(func=cmd_sweep)

    p = commands.add_parser("finetune", parents=[data, budget, result],
                            help="fine-tune an ImageNet-pretrained torchvision model")
    p.add_argument("--model", required=True, help="any torchvision classification model, e.g. resnet50")
    p.add_argument("--strategy", required=True, choices=["head", "first_k", "last_k", "full"])
    p.add_argument("--k", type=int, help="units that first_k freezes / last_k trains (default: half of them)")
    p.add_argument("--random-init", action="store_true",
                   help="without the pretrained weights, fine-tune random ones instead of stopping (offline demos)")
    p.add_argument("--test", action="store_true")
    p.set_defaults(func=cmd_finetune)

    p = commands.add_parser("report", help="the W&B report and its offline copy, outputs/report.html")
    p.add_argument("--outputs", type=Path, default=OUTPUT_DIR,
                   help="the outputs folder the notebooks wrote (default: the outputs setting)")
    p.add_argument("--html", type=Path, help="the offline copy (default: OUTPUTS/report.html)")
    online = p.add_mutually_exclusive_group()
    online.add_argument("--online", dest="online", action="store_true", default=None,
                        help="also build the W&B report (default: when a W&B key is found and accepted)")
    online.add_argument("--offline", dest="online", action="store_false", default=None, help="only the HTML copy")
    p.set_defaults(func=cmd_report)

    p = commands.add_parser("estimate", parents=[data, result], help="estimated time of the full sweep on this machine")
    p.add_argument("--count", type=int, default=30, help="runs (default 30, Part-A/02's full mode)")
    p.add_argument("--input-size", type=int, help="pixels (default: the sweep's, 128)")
    p.add_argument("--gpu-memory", type=float, help="GiB: write the memory plan of the heaviest configs instead")
    p.set_defaults(func=cmd_estimate)

    p = commands.add_parser("bench", parents=[result], help="engine vs typical pipeline, images/s")
    p.add_argument("--data", help="an ImageFolder root with train/ (default: synthetic 800x600 JPEGs)")
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--configs", help="comma-separated: light,heavy (default: both on a GPU, light on a CPU)")
    p.add_argument("--compile", choices=["auto", "true", "false"], default="auto",
                   help="torch.compile the engine's model (auto: only when the run is big enough to repay it)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        check_numbers(args)
        check_paths(args)
        # Everything a command prints goes to stderr, so stdout carries the JSON alone (pipe it to jq).
        with contextlib.redirect_stdout(sys.stderr):
            payload = args.func(args)
        if path := getattr(args, "json", None):
            save_json(payload, path, default=str)  # atomic: a crash never leaves half a result
            print(f"wrote {path}", file=sys.stderr)
        else:
            print(json.dumps(payload, indent=2, default=str))
    except UserError as err:  # bad input: one line, exit status 1; a traceback means a bug
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
