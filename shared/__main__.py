"""Command line: `python -m shared train|sweep|finetune|bench ...`, a thin layer over the notebooks' functions.

    python -m shared train --data DIR [--input-size S] [--epochs E] [--batch-size B] [--set key=value ...] [--test] [--json FILE]
    python -m shared sweep --data DIR --count N [--method bayes|random|grid] [--input-size S] [--epochs E] [--sweep-id ID] [--json FILE]
    python -m shared finetune --data DIR --model NAME --strategy head|first_k|last_k|full [--k K] [--epochs E] [--input-size S] [--test] [--json FILE]
    python -m shared bench [--data DIR] [--input-size S] [--batch-size B] [--epochs E] [--configs light,heavy] [--json FILE]
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
from pathlib import Path

from .model import CNNConfig
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
            raise SystemExit(f"--set expects key=value, got {pair!r}")
        owner = next((cls for cls in fields if key in fields[cls]), None)
        if owner is None:
            valid = sorted(set(fields[CNNConfig]) | set(fields[TrainConfig]))
            raise SystemExit(f"unknown --set key {key!r}; valid keys: {', '.join(valid)}")
        field = fields[owner][key]
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        try:
            out[owner][key] = _coerce(value, default, str(field.type))
        except ValueError as err:
            raise SystemExit(f"--set {key}: {err}") from None
    return out[CNNConfig], out[TrainConfig]


def _write_json(payload: dict, path: str | None) -> None:
    text = json.dumps(payload, indent=2, default=str)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)
        print(f"wrote {path}", file=sys.stderr)
    else:
        print(text)


def cmd_train(args) -> dict:
    from .data import find_data
    from .train import train

    cnn_kwargs, train_kwargs = parse_overrides(args.set)
    if args.input_size:
        cnn_kwargs["input_size"] = args.input_size
    if args.epochs:
        train_kwargs["epochs"] = args.epochs
    if args.batch_size:
        train_kwargs["batch_size"] = args.batch_size
    result = train(CNNConfig(**cnn_kwargs), find_data(args.data), TrainConfig(**train_kwargs), test=args.test,
                   checkpoint=args.checkpoint)
    return result.to_dict()


def cmd_sweep(args) -> dict:
    from .data import find_data
    from .sweep import run_sweep

    result = run_sweep(find_data(args.data), count=args.count, method=args.method, input_size=args.input_size,
                       epochs=args.epochs, sweep_id=args.sweep_id)
    return result


def cmd_finetune(args) -> dict:
    from .data import find_data
    from .finetune import WeightsUnavailable, run_finetune

    try:
        result = run_finetune(find_data(args.data), args.model, args.strategy, k=args.k, epochs=args.epochs,
                              input_size=args.input_size, test=args.test)
    except WeightsUnavailable as err:
        raise SystemExit(f"error: {err}") from None  # one line and exit status 1, not a traceback
    return result


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

    p = commands.add_parser("sweep", help="run a W&B sweep (online with a key, else offline)")
    p.add_argument("--data")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--method", choices=["bayes", "random", "grid"], default="bayes")
    p.add_argument("--input-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--sweep-id", help="join an existing online sweep as one more agent")
    p.add_argument("--json")
    p.set_defaults(func=cmd_sweep)

    p = commands.add_parser("finetune", help="fine-tune an ImageNet-pretrained torchvision model")
    p.add_argument("--data")
    p.add_argument("--model", required=True, help="any torchvision classification model, e.g. resnet50")
    p.add_argument("--strategy", required=True, choices=["head", "first_k", "last_k", "full"])
    p.add_argument("--k", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--input-size", type=int)
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
    # Everything a command prints goes to stderr, so stdout carries the JSON alone (pipe it to jq).
    with contextlib.redirect_stdout(sys.stderr):
        payload = args.func(args)
    _write_json(payload, args.json)


if __name__ == "__main__":
    main()
