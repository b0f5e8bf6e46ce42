"""Augmentation on the device, batched: the training batches' random crops, flips and colour jitter, with no
per-image loop and no PIL. Introduced in Part-A/02 (the sweep's `augment` switch).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import data as data_lib


def augment_batch(x: torch.Tensor, scale=(0.6, 1.0), ratio=(3 / 4, 4 / 3), jitter: float = 0.2) -> torch.Tensor:
    """Random-resized-crop + horizontal flip + mild colour jitter for a float batch in [0, 1]; one `grid_sample`
    does crop, zoom and flip with a different affine per image."""
    b, device = x.shape[0], x.device
    area = torch.empty(b, device=device).uniform_(*scale)
    log_ratio = torch.empty(b, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_ratio)
    sx = torch.sqrt(area * aspect).clamp(max=1.0)
    sy = torch.sqrt(area / aspect).clamp(max=1.0)
    tx = (torch.rand(b, device=device) * 2 - 1) * (1 - sx)
    ty = (torch.rand(b, device=device) * 2 - 1) * (1 - sy)
    flip = torch.where(torch.rand(b, device=device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = sx * flip, tx
    theta[:, 1, 1], theta[:, 1, 2] = sy, ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if jitter:
        factors = 1 + (torch.rand(b, 3, 1, 1, 1, device=device, dtype=x.dtype) * 2 - 1) * jitter
        x = x * factors[:, 0]                                           # brightness
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factors[:, 1] + mean                           # contrast
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * factors[:, 2] + gray                           # saturation
        x = x.clamp(0, 1)
    return x


def prepare_batch(images: torch.Tensor, device: torch.device, augment: bool, mean, std) -> torch.Tensor:
    """uint8 batch -> (augmented) normalised float32, channels_last, on `device`."""
    x = images.to(device, non_blocking=True).float().div_(255)
    if augment:
        x = augment_batch(x)
    return data_lib.normalize(x, mean, std).contiguous(memory_format=torch.channels_last)
