"""Command line: `python -m shared train|sweep|finetune|bench ...`, a thin layer over the notebooks' functions.

    python -m shared train --data DIR [--input-size S] [--epochs E] [--batch-size B] [--set key=value ...] [--test] [--json FILE]
    python -m shared sweep --data DIR --count N [--method bayes|random|grid] [--input-size S] [--epochs E] [--sweep-id ID] [--runs FILE] [--json FILE]
    python -m shared finetune --data DIR --model NAME --strategy head|first_k|last_k|full [--k K] [--epochs E] [--input-size S] [--random-init] [--test] [--json FILE]
    python -m shared bench [--data DIR] [--input-size S] [--batch-size B] [--epochs E] [--configs light,heavy] [--json FILE]

Bad input (a setting, a path, a dataset, missing weights) stops before any long work with one line,
`error: <message>`, and exit status 1. stdout carries the result's JSON alone; progress goes to stderr.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from .model import CNNConfig, ConfigError
from .runtime import UserError, save_json, write_problem
from .train import TrainConfig


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


def check_output_path(path: str | None, flag: str) -> None:
    """Refuse an output file we could not write, before the run whose result it would hold.

    A folder, or a place where no file can be created, used to fail only after training: the result was lost.
    """
    if not path:
        return
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name, e.g. {target / 'result.json'}")
    problem = write_problem(target.parent)
    if problem:
        raise UserError(f"{flag} {path} cannot be written ({problem}); choose another place")


def _write_json(payload: dict, path: str | None) -> None:
    if path:
        save_json(payload, path, default=str)  # atomic: a crash never leaves half a result
        print(f"wrote {path}", file=sys.stderr)
    else:
        print(json.dumps(payload, indent=2, default=str))


def cmd_train(args) -> dict:
    from .data import find_data
    from .train import train

    cnn_kwargs, train_kwargs = parse_overrides(args.set)
    # `is not None`: an explicit 0 must reach the configs' checks, not silently become the default.
    if args.input_size is not None:
        cnn_kwargs["input_size"] = args.input_size
    if args.epochs is not None:
        train_kwargs["epochs"] = args.epochs
    if args.batch_size is not None:
        train_kwargs["batch_size"] = args.batch_size
    cfg, tcfg = CNNConfig(**cnn_kwargs), TrainConfig(**train_kwargs)  # settings first: no data is touched yet
    check_output_path(args.checkpoint, "--checkpoint")
    result = train(cfg, find_data(args.data), tcfg, test=args.test, checkpoint=args.checkpoint)
    return result.to_dict()


def cmd_sweep(args) -> dict:
    """Start a sweep, or continue one (`--sweep-id`, offline too); the result holds all its runs so far."""
    from .data import find_data
    from .runtime import SWEEP_RUNS
    from .sweep import run_sweep

    return run_sweep(find_data(args.data), count=args.count, method=args.method, input_size=args.input_size,
                     epochs=args.epochs, sweep_id=args.sweep_id, path=args.runs or SWEEP_RUNS)


def cmd_finetune(args) -> dict:
    from .finetune import run_finetune

    if args.k is not None and args.strategy not in ("first_k", "last_k"):
        raise ConfigError(f"--k is used by first_k and last_k only, not by {args.strategy}")
    return run_finetune(args.data, args.model, args.strategy, k=args.k, epochs=args.epochs,
                        input_size=args.input_size, test=args.test, allow_random=args.random_init)


def cmd_bench(args) -> dict:
    from .bench import run_bench

    configs = tuple(args.configs.split(",")) if args.configs else None
    return run_bench(args.data, input_size=args.input_size, batch_size=args.batch_size, epochs=args.epochs,
                     configs=configs, compile=args.compile)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train one Part A config")
    p.add_argument("--data", help="folder holding train/ and val/ (default: find it, else demo data)")
    p.add_argument("--input-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any CNNConfig or TrainConfig field, e.g. filters=32,64,64,128,128 batch_norm=false")
    p.add_argument("--test", action="store_true", help="also evaluate on DIR/val (the test set)")
    p.add_argument("--checkpoint", help="save the best epoch's weights here")
    p.add_argument("--json", help="write the result here (default: stdout)")
    p.set_defaults(func=cmd_train)

    p = commands.add_parser("sweep", help="run or continue a W&B sweep (online with a key, else offline)")
    p.add_argument("--data")
    p.add_argument("--count", type=int, required=True, help="runs to add (0: change nothing)")
    p.add_argument("--method", choices=["bayes", "random", "grid"], help="a new sweep's method (default bayes)")
    p.add_argument("--input-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--sweep-id", help="continue this sweep: a local-... id offline, or join a W&B sweep online")
    p.add_argument("--runs", help="the runs table every run is appended to (default outputs/sweep_runs.json)")
    p.add_argument("--json", help="also write this sweep's runs (earlier sessions' included) here")
    p.set_defaults(func=cmd_sweep)

    p = commands.add_parser("finetune", help="fine-tune an ImageNet-pretrained torchvision model")
    p.add_argument("--data")
    p.add_argument("--model", required=True, help="any torchvision classification model, e.g. resnet50")
    p.add_argument("--strategy", required=True, choices=["head", "first_k", "last_k", "full"])
    p.add_argument("--k", type=int, help="units that first_k freezes / last_k trains (default: half of them)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--input-size", type=int)
    p.add_argument("--random-init", action="store_true",
                   help="without the pretrained weights, fine-tune random ones instead of stopping (offline demos)")
    p.add_argument("--test", action="store_true")
    p.add_argument("--json")
    p.set_defaults(func=cmd_finetune)

    p = commands.add_parser("bench", help="engine vs typical pipeline, images/s")
    p.add_argument("--data")
    p.add_argument("--input-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--configs", help="comma-separated: light,heavy (default: both on a GPU, light on a CPU)")
    p.add_argument("--compile", choices=["auto", "true", "false"], default="auto",
                   help="torch.compile the engine's model (auto: only when the run is big enough to repay it)")
    p.add_argument("--json")
    p.set_defaults(func=cmd_bench)

    args = parser.parse_args(argv)
    try:
        check_output_path(args.json, "--json")
        # Everything a command prints goes to stderr, so stdout carries the JSON alone (pipe it to jq).
        with contextlib.redirect_stdout(sys.stderr):
            payload = args.func(args)
        _write_json(payload, args.json)
    except UserError as err:  # bad input: one line, exit status 1; a traceback means a bug
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
