"""Decoding every image once: a file's bytes -> uint8 [3, S, S], or the reason the file is skipped.

Introduced in Part-A/01, behind `shared.data.load_folder`, which caches what this file decodes.

- JPEGs: libjpeg-turbo through simplejpeg, at the smallest DCT scale (1, 1/2, 1/4, 1/8) that keeps the target
  (PIL's `draft()` rule and pixels), with libjpeg's warnings as errors, so a JPEG with corrupt entropy data
  (which PIL and torchvision decode silently into garbled pixels) is skipped. Without simplejpeg, PIL and
  torchvision decode them and such a JPEG is not caught. Every other image: torchvision, else PIL.
- decoder="cuda": colour JPEGs go to nvJPEG in batches and are resized on the GPU; the rest take the CPU path,
  so both skip the same files for the same reasons (a corrupt JPEG that nvJPEG decodes without error is kept).
- A file that is empty, unreadable, corrupt, truncated or over PIL's `Image.MAX_IMAGE_PIXELS` (a possible
  decompression bomb) is a skip with a one-line reason, never a crash.
"""
from __future__ import annotations

import contextlib
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

from .runtime import UserError

_JPEG_FORMATS = ("JPEG", "MPO")  # MPO: a camera's JPEG with extra views appended; the first view is decoded


class BadImage(Exception):
    """A file that is not a usable image; the message is why it is skipped."""


def _read_file(path: Path) -> bytes:
    """The one place an image file is read, whichever decoder runs (tests count its calls)."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise BadImage(f"cannot be read ({err.strerror or err})") from None


def _open_header(data: bytes) -> Image.Image:
    """PIL's lazy open: format, mode and size from the header, no pixels decoded yet. An image over
    `Image.MAX_IMAGE_PIXELS` is refused here, before a decompression bomb can take the memory."""
    if not data:
        raise BadImage("empty file")
    try:
        image = Image.open(io.BytesIO(data))  # below 2x its limit PIL only warns; we refuse from 1x, below
    except Image.DecompressionBombError as err:
        raise BadImage(f"not decoded: {err}") from None
    except Exception as err:
        raise BadImage(f"not a readable image ({type(err).__name__}: {err})") from None
    width, height = image.size
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        image.close()
        raise BadImage(f"not decoded: {width}x{height} = {width * height:,} pixels is over PIL's "
                       f"Image.MAX_IMAGE_PIXELS ({limit:,}), a possible decompression bomb")
    return image


def _draft_scale(width: int, height: int, at_least: int) -> int:
    """The largest of 8, 4, 2, 1 that both sides can be divided by and stay >= `at_least`: PIL's `draft()` rule."""
    fits = min(width // at_least, height // at_least)
    return next((scale for scale in (8, 4, 2, 1) if fits >= scale), 1)


def _decode_jpeg(data: bytes, header: Image.Image, at_least: int | None) -> torch.Tensor:
    """uint8 [3, H, W] RGB of a JPEG at the smallest DCT scale that keeps both sides >= `at_least` (None: whole),
    or BadImage: libjpeg then reads up to 64x fewer pixels, and the resize that follows still only shrinks."""
    width, height = header.size
    scale = _draft_scale(width, height, at_least) if at_least else 1
    pixels = _strict_libjpeg(data, header.mode, width, height, scale)
    if pixels is not None:
        return torch.from_numpy(pixels).permute(2, 0, 1)
    if scale == 1:
        return _decode_other(data)  # torchvision: faster than PIL at full scale (2.5 vs 3.2 ms for 800x600)
    try:
        header.draft("RGB", (at_least, at_least))
        header.load()  # raises on truncated or corrupt data
        rgb = header if header.mode == "RGB" else header.convert("RGB")  # grayscale, CMYK
        return torch.from_numpy(np.array(rgb)).permute(2, 0, 1)
    except Exception as err:
        raise BadImage(f"not a readable image ({type(err).__name__}: {err})") from None


def _strict_libjpeg(data: bytes, mode: str, width: int, height: int, scale: int) -> np.ndarray | None:
    """uint8 [H, W, 3] RGB of a JPEG at 1/`scale` by simplejpeg, BadImage when libjpeg warns, or None where PIL
    or torchvision decode it instead: no simplejpeg, a JPEG it cannot decode at all, and CMYK (only checked here:
    its CMYK->RGB conversion is 1 level off PIL's). Asking for 1/scale's sides exactly pins simplejpeg's choice
    among libjpeg-turbo's 16 scales to PIL's, and then its pixels are PIL's."""
    try:  # imported here: the notebooks' setup cell imports shared.data before it installs simplejpeg
        import simplejpeg
    except ImportError:
        return None
    colorspace = "CMYK" if mode == "CMYK" else "RGB"  # grayscale comes out as 3 equal channels, as PIL's
    sides = dict(min_height=-(-height // scale), min_width=-(-width // scale))
    try:
        pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=True, **sides)
    except ValueError as warning:
        try:  # a warning (corrupt data) decodes when not strict; an error (a JPEG it cannot read) does not
            simplejpeg.decode_jpeg(data, colorspace=colorspace, strict=False, **sides)
        except ValueError:
            return None
        raise BadImage(f"corrupt JPEG data (libjpeg warns: {warning})") from None
    return None if mode == "CMYK" else pixels


def _decode_other(data: bytes) -> torch.Tensor:
    """uint8 [3, H, W] RGB of a PNG, GIF, BMP, WebP or TIFF, or of a JPEG decoded whole.
    (No warnings.catch_warnings(): it swaps process-wide filters, which concurrent threads leave in a mess.)"""
    try:
        image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
        if image.ndim == 4:  # an animated GIF/WebP decodes to [frames, 3, H, W]: keep the first frame
            image = image[0]
        if image.dtype != torch.uint8:  # 16-bit PNGs decode to uint16; a plain cast would wrap around
            image = TF.to_dtype(image, torch.uint8, scale=True)
        return image
    except RuntimeError:  # corrupt/truncated data, or a format torchvision lacks: PIL decides
        pass
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            gray = image.mode == "F" or image.mode.startswith("I")
            array = _scaled_gray(image) if gray else np.array(image.convert("RGB"))
    except BadImage:
        raise
    except Exception as err:
        raise BadImage(f"not a readable image ({type(err).__name__}: {err})") from None
    return torch.from_numpy(array).permute(2, 0, 1)


def _scaled_gray(image: Image.Image) -> np.ndarray:
    """uint8 [H, W, 3] of a float (F) or integer (I, I;16) grayscale image, e.g. a scientific TIFF, scaled by the
    first range that holds every pixel (PIL's convert("RGB") would clip them to 0..255); BadImage if none does."""
    values = np.asarray(image)
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise BadImage(f"mode {image.mode} image with NaN or infinite pixel values")
    low, high = values.min(), values.max()
    tops = (65535,) if image.mode.startswith("I;16") else (1.0, 255, 65535) if image.mode == "F" else (255, 65535)
    top = next((t for t in tops if low >= 0 and high <= t), None)
    if top is None:
        raise BadImage(f"mode {image.mode} pixel values from {low:g} to {high:g} fit none of the ranges "
                       f"0..1, 0..255, 0..65535, so their brightness cannot be known")
    gray = np.round(values.astype(np.float64) * (255 / top)).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)


def resize_uint8(image: torch.Tensor, size: int, resize_to: int | None = None) -> torch.Tensor:
    """Resize a uint8 image. resize_to=None squashes to size x size (the whole photo is kept: Part A's choice);
    resize_to=R resizes the shorter side to R, then centre-crops size x size (torchvision weights' recipe)."""
    if resize_to is None:
        return TF.resize(image, [size, size], antialias=True)
    short, long = sorted(image.shape[-2:])
    limit = Image.MAX_IMAGE_PIXELS
    if limit and resize_to * long * resize_to > limit * short:  # a 2x12000 PNG would grow to 224x1,344,000
        raise BadImage(f"not resized: its shorter side at {resize_to} px makes "
                       f"{resize_to}x{resize_to * long // short:,} pixels, over PIL's "
                       f"Image.MAX_IMAGE_PIXELS ({limit:,})")
    image = TF.resize(image, resize_to, antialias=True)
    return TF.center_crop(image, [size, size])


def _decode_bytes(data: bytes, size: int | None, resize_to: int | None = None) -> torch.Tensor:
    """One file's bytes -> uint8 [3, size, size] on the CPU (size=None: [3, H, W], the whole image); BadImage when
    they are not a usable image."""
    with _open_header(data) as header:
        if header.format in _JPEG_FORMATS:
            rgb = _decode_jpeg(data, header, resize_to or size)
        else:
            rgb = _decode_other(data)
    return rgb if size is None else resize_uint8(rgb, size, resize_to)


def read_rgb(path: str | os.PathLike) -> torch.Tensor:
    """One image at full resolution as uint8 [3, H, W] RGB, through the cache's readers and checks: a file the
    cache would skip raises BadImage with the file and the reason. Introduced in Part-B/01, for figures."""
    path = Path(path)
    try:
        return _decode_bytes(_read_file(path), None)
    except BadImage as err:
        raise BadImage(f"{path}: {err}") from None


def _decode(args):
    """The CPU decoder, one file by its path or its bytes: (uint8 [3, size, size], None), or (None, why skipped)."""
    source, size, resize_to = args
    try:
        data = _read_file(source) if isinstance(source, Path) else source
        return _decode_bytes(data, size, resize_to), None
    except BadImage as err:
        return None, str(err)


def _inspect(path: Path) -> tuple[bytes, bool] | tuple[None, str]:
    """For the CUDA decoder: (the file's bytes, whether nvJPEG takes it: colour JPEGs only), or (None, why skipped)."""
    try:
        data = _read_file(path)
        with _open_header(data) as header:
            return data, header.format == "JPEG" and header.mode == "RGB"
    except BadImage as err:
        return None, str(err)


def _decode_cuda(files: list[Path], size: int, resize_to: int | None, pool: ThreadPoolExecutor, batch_size: int = 64):
    """The CUDA decoder: yields (image, reason) per file, in order, like `_decode` over `files`. Colour JPEGs
    go to nvJPEG in batches; the rest, and every file of a batch nvJPEG refuses (one corrupt JPEG fails the
    whole call), go through the CPU path, so skips and their reasons are the CPU path's."""
    from torchvision.io import decode_jpeg  # batched GPU decoding needs torchvision >= 0.19

    for start in range(0, len(files), batch_size):
        inspected = list(pool.map(_inspect, files[start:start + batch_size]))
        results = [None if data is not None else (None, reason) for data, reason in inspected]
        on_gpu = [i for i, (data, nvjpeg_takes_it) in enumerate(inspected) if data is not None and nvjpeg_takes_it]
        with contextlib.suppress(RuntimeError, BadImage):  # nvJPEG refused the batch, or a file too long to resize
            encoded = [torch.frombuffer(bytearray(inspected[i][0]), dtype=torch.uint8) for i in on_gpu]
            decoded = decode_jpeg(encoded, mode=ImageReadMode.RGB, device="cuda") if encoded else []
            resized = torch.stack([resize_uint8(image, size, resize_to) for image in decoded]).cpu() if decoded else []
            for i, image in zip(on_gpu, resized):
                results[i] = (image, None)
        on_cpu = [i for i, result in enumerate(results) if result is None]
        for i, result in zip(on_cpu, pool.map(_decode, ((inspected[i][0], size, resize_to) for i in on_cpu))):
            results[i] = result
        yield from results


@contextlib.contextmanager
def one_torch_thread():
    """Torch on one intra-op thread inside the block, restored afterwards: decoding threads' resizes would
    otherwise oversubscribe the CPU (each worker with as many threads as cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def choose_decoder(decoder: str) -> str:
    """"cpu" or "cuda" from "auto" | "cpu" | "cuda"; a UserError for a choice this machine cannot run."""
    if decoder not in ("auto", "cpu", "cuda"):
        raise UserError(f"decoder must be 'auto', 'cpu' or 'cuda', got {decoder!r}")
    if decoder == "cuda" and not torch.cuda.is_available():
        raise UserError("decoder='cuda' needs a CUDA GPU, and torch.cuda.is_available() is False; use 'cpu' or 'auto'")
    if decoder == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return decoder


def decode_all(files: list[Path], size: int, resize_to: int | None, decoder: str, workers: int, bar) -> tuple:
    """(uint8 [N, 3, size, size] of the readable files, their indices in `files`, [(path, reason)] of the rest)."""
    images = torch.empty(len(files), 3, size, size, dtype=torch.uint8)
    keep, skipped = [], []
    with one_torch_thread(), ThreadPoolExecutor(workers) as pool:  # PIL, libjpeg and torch release the GIL
        if decoder == "cuda":
            results = _decode_cuda(files, size, resize_to, pool)
        else:
            results = pool.map(_decode, ((f, size, resize_to) for f in files))
        for i, (image, error) in enumerate(bar(results)):
            if error is None:
                images[len(keep)] = image
                keep.append(i)
            else:
                skipped.append((str(files[i]), error))
    return (images if len(keep) == len(files) else images[:len(keep)].clone()), keep, skipped
