"""Measurement tools beside the notebooks' package: nothing in `shared/` imports them.

- `bench.py`: our engine against the typical ImageFolder/PIL pipeline (`python -m benchmarks.bench`, `make bench`);
- `gpu_check.py` and `gpu_stages.py`: one timed call on a lent GPU (`python -m benchmarks.gpu_check --out DIR`,
  `make gpu-check`);
- `results/`: measured figures kept with the date and the machine they came from.

Run them from the repository root, where `shared` and `benchmarks` are both importable.
"""
