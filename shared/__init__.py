"""DA6401 Assignment 2: the reusable code behind the notebooks.

One concept per file: runtime (settings), data, model, formulas, train, tracking (W&B),
sweep, viz, finetune. The notebooks import what they need: `from shared import data, model`.
"""
