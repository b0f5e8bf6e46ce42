"""Finding, scanning, decoding once, caching and serving the iNaturalist-12K images (or the embedded demo set).

Introduced in Part-A/01. Every image is decoded once (`shared.decode`) into one uint8 [N, 3, S, S] tensor, cached
on disk; epochs only index that tensor (on the GPU when it fits). Where the data may be is `shared.sources`.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import time
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import decode, sources
from .runtime import atomic_path, banner, cache_dir as runtime_cache_dir, on_colab, on_kaggle, write_problem
from .sources import DataError, MissingData, is_demo, is_image_name, is_junk_folder, one_line, tqdm

CACHE_VERSION = 5  # bumped whenever what a cache holds changes meaning
# ImageNet statistics: used for the scratch CNN too, so Part A and Part B share one normalisation.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


# Finding and scanning a dataset --------------------------------------------------------------------------------
def find_data(path: str | os.PathLike | None = None, download: bool | None = None) -> Path:
    """Locate the dataset root (the folder with train/ and val/, or a view of one with train/ and test/).

    Order: `path` or $INAT_DATA (the root or any folder above it); on Kaggle a search of /kaggle/input; a
    download (automatic on Colab, or `download=True` / $INAT_DOWNLOAD=1); the repo-local data/inaturalist_12K;
    otherwise, never on Kaggle or Colab, the embedded demo set with a banner. An unusable folder, or one above
    several datasets, is a `DataError` that says why, never a silent choice.
    """
    explicit = path or os.environ.get("INAT_DATA")
    if explicit:
        return sources.given_dataset(explicit)
    if on_kaggle() and (attached := sources.attached_dataset()) is not None:
        return attached
    if download is None:
        download = on_colab() or os.environ.get("INAT_DOWNLOAD", "") == "1"
    if download:
        return sources.download_dataset()
    if (local := sources.local_dataset()) is not None:
        return local
    if on_kaggle():
        raise sources.nothing_attached()
    if on_colab():
        raise MissingData(f"iNaturalist-12K not found. On Colab: call find_data(download=True), or set INAT_DATA "
                          f"to the unzipped folder on Drive. Source: {sources.DATASET_URL}")
    root = sources.make_demo_dataset()
    banner("DEMO DATA: iNaturalist-12K was not found, so this runs on the embedded demo set\n"
           "(scikit-learn's handwritten digits, upscaled into a nature_12K-shaped folder).\n"
           "Numbers below are NOT iNaturalist results. Set INAT_DATA=/path/to/inaturalist_12K,\n"
           "put it in data/inaturalist_12K, or run with INAT_DOWNLOAD=1 to fetch it (3.6 GB).")
    return root


def scan_folder(folder: str | os.PathLike, expected_classes: list[str] | None = None):
    """(classes, files, labels) of an ImageFolder. Stray non-image files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingData(f"{folder} is missing. The dataset root must hold train/<class>/ and "
                          f"val/<class>/ as in nature_12K.zip; point INAT_DATA at that root.")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not is_junk_folder(p.name))
    if not classes:
        raise MissingData(f"{folder} has no class folders; expected {folder}/<class>/*.jpg")
    if expected_classes is not None and classes != list(expected_classes):
        raise DataError(f"The class folders of {folder} differ from train/'s: "
                        f"only in train/: {sorted(set(expected_classes) - set(classes))}; "
                        f"only in {folder.name}/: {sorted(set(classes) - set(expected_classes))}. "
                        f"Rename them so that both splits have the same classes.")
    files, labels = [], []
    for label, name in enumerate(classes):
        images = sorted(p for p in (folder / name).iterdir() if is_image_name(p))
        if not images:
            raise DataError(f"Class folder {folder / name} has no images. Remove it or restore its images.")
        files += images
        labels += [label] * len(images)
    return classes, files, labels


@dataclass
class DatasetInfo:
    """What `check_dataset` found: the class names and the training images per class."""
    classes: list[str]
    train_counts: dict[str, int]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def check_dataset(root: str | os.PathLike) -> DatasetInfo:
    """Check a dataset root before any long work (file names only): train/ and val/ with the same >= 2 classes,
    every class with at least one image in each; else `DataError`."""
    root = Path(root)
    classes, _, train_labels = scan_folder(root / "train")
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} has {len(classes)} class folder(s) ({', '.join(classes)}); "
                        f"a classifier needs at least 2.")
    scan_folder(root / "val", expected_classes=classes)
    return DatasetInfo(classes, {name: train_labels.count(i) for i, name in enumerate(classes)})


def data_fingerprint(root: str | os.PathLike) -> dict:
    """What ties a result to its data: the resolved root and a hash of the train/ and val/ files' names and bytes.
    Content, not mtimes: a copy of the same files (a zip extracted again, another machine) is the same data."""
    root = Path(root).resolve()
    digest = hashlib.sha1()
    for split in ("train", "val"):
        if (root / split).is_dir():
            _add_names_and_contents(digest, sorted(p for p in (root / split).rglob("*") if is_image_name(p)), root)
    return {"root": str(root), "files": digest.hexdigest()[:16], "demo": is_demo(root)}


def _add_names_and_contents(digest, files: list[Path], base: Path) -> None:
    """Feed `digest` each file's name relative to `base` (as bytes: a name that is not UTF-8 counts too) and a
    hash of its bytes (sha1, once per process). One line says so when it takes long (a slow Drive)."""
    start, before = time.perf_counter(), _file_hash.cache_info().misses
    for path in files:
        stat = path.stat()
        digest.update(os.fsencode(path.relative_to(base)) + b"|" + _file_hash(path, stat.st_size, stat.st_mtime_ns))
    if (seconds := time.perf_counter() - start) > 10:
        print(f"Hashed the bytes of {_file_hash.cache_info().misses - before} file(s) under {base} in {seconds:.0f} s, "
              f"to tie the image cache and the results to this data's content (once per session).")


@functools.lru_cache(maxsize=None)
def _file_hash(path: Path, size: int, mtime_ns: int) -> bytes:  # size and mtime: a changed file is hashed again
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha1").digest() if hasattr(hashlib, "file_digest") else \
            hashlib.sha1(f.read()).digest()


def same_data(fingerprint: dict | None, other: dict | None) -> bool:
    """True when two fingerprints name the same files (the root may differ: a copy on Drive is the same data)."""
    return bool(fingerprint and other) and fingerprint.get("files") == other.get("files")


# The decode-once cache (the decoding itself is shared/decode.py) -----------------------------------------------
def _printable(text: str) -> str:
    """`text` safe to print: a file name that is not UTF-8 (kept by Python as surrogates) shows as U+FFFD."""
    return os.fsencode(text).decode("utf-8", "replace")


@dataclass
class ImageSet:
    """Decoded images of one folder: uint8 `images [N, 3, S, S]`, int64 `labels [N]`."""
    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "ImageSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index], self.classes,
                        [self.files[i] for i in index.tolist()] if self.files else [], self.skipped)

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels.cpu(), minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts))


def _cache_path(folder: Path, files: list[Path], size: int, resize_to: int | None, cache_dir: Path) -> Path:
    """The cache file for these files at this size: `<parent>-<folder>-<where>-<size>-<content>.pt`. <content>
    hashes the files' relative names and bytes, not mtimes, so a zip unzipped again finds its cache; <where>
    (the folder's path) only tells whose older caches a new one replaces."""
    content = hashlib.sha1(f"v{CACHE_VERSION}|{size}|{resize_to}\n".encode())
    _add_names_and_contents(content, files, folder)
    where = hashlib.sha1(os.fsencode(folder.resolve())).hexdigest()[:10]
    tag = re.sub(r"[^\w.]", "_", f"{folder.parent.name}-{folder.name}", flags=re.ASCII)
    tag = f"{tag}-{where}-{size}" + (f"r{resize_to}" if resize_to else "")
    return cache_dir / f"{tag}-{content.hexdigest()[:12]}.pt"


def _checksum(saved: dict) -> str:
    """CRC-32 of a cache's tensors and names (0.2 s for 1.5 GB): torch.load reads damaged pixels without complaint."""
    names = "\n".join([*saved["files"], *(f"{path}|{reason}" for path, reason in saved["skipped"])])
    crc = zlib.crc32(names.encode("utf-8", "surrogateescape"))
    crc = zlib.crc32(saved["labels"].contiguous().numpy(), zlib.crc32(saved["images"].contiguous().numpy(), crc))
    return f"crc32:{crc:08x}"


def _find_cache(cache_file: Path) -> Path | None:
    """`cache_file`, or a cache of the same content made for the same files under another path (a copy
    of the dataset), renamed to `cache_file`; None when there is neither."""
    if cache_file.exists():
        return cache_file
    content = cache_file.name.rsplit("-", 1)[1]
    for twin in sorted(cache_file.parent.glob(f"*-{content}")):  # none when the folder is missing
        try:
            os.replace(twin, cache_file)
            return cache_file
        except OSError:  # another process moved it first, or a read-only cache folder: read it where it is
            if twin.exists():
                return twin
    return None


def load_folder(folder: str | os.PathLike, size: int, resize_to: int | None = None,
                cache_dir: str | os.PathLike | None = None, workers: int | None = None,
                expected_classes: list[str] | None = None, progress: bool = True,
                decoder: str = "auto") -> ImageSet:
    """Decode every image of an ImageFolder once into a uint8 [N, 3, size, size] tensor, cached on disk.

    The cache is keyed on the files (relative names and bytes), `size` and `resize_to`, and rebuilt when its
    checksum shows damage; an unwritable cache folder is a warning. Unreadable files are listed in `ImageSet.skipped`.
    decoder: "cpu" (on `workers` threads, default one per core), "cuda" (nvJPEG) or "auto" (cuda when available);
    both build the same cache.
    """
    folder = Path(folder)
    decoder = decode.choose_decoder(decoder)
    classes, files, labels = scan_folder(folder, expected_classes)
    cache_file = _cache_path(folder, files, size, resize_to, Path(cache_dir or runtime_cache_dir()))
    if (cached := _load_cache(cache_file, folder, classes, progress)) is not None:
        return cached
    if (problem := write_problem(cache_file.parent)) is not None:
        print(f"Warning: cannot write the decode cache in {cache_file.parent} ({problem}); decoding without "
              f"a cache, so the next run decodes again (set INAT_CACHE to a writable folder).")
        cache_file = None
    bar = functools.partial(tqdm, total=len(files), disable=not progress, unit="img",
                            desc=f"decoding {_printable(folder.name)}/ at {size}px")
    images, keep, skipped = decode.decode_all(files, size, resize_to, decoder, workers or os.cpu_count() or 1, bar)
    if skipped:
        print(f"Skipped {len(skipped)} unreadable file(s) in {_printable(str(folder))}:")
        for path, reason in skipped[:10]:
            print(f"  {_printable(path)}: {reason}")
        if len(skipped) > 10:
            print(f"  ... and {len(skipped) - 10} more (see ImageSet.skipped)")
    result = ImageSet(images, torch.tensor([labels[i] for i in keep], dtype=torch.long),
                      classes, [str(files[i].relative_to(folder)) for i in keep], skipped)
    if cache_file is not None:
        _save_cache(result, cache_file)
    return result


_MEMO: dict = {}  # (cache file, mtime) -> ImageSet, the last two loaded (typically train/ and val/)


def _load_cache(cache_file: Path, folder: Path, classes: list[str], progress: bool) -> ImageSet | None:
    """The cached set, or None when there is none or it is damaged (then the caller rebuilds it)."""
    cache_file = _find_cache(cache_file)
    if cache_file is None:
        return None
    memo_key = (cache_file, cache_file.stat().st_mtime_ns)
    if memo_key in _MEMO:  # a sweep's runs share one loaded cache instead of re-reading GBs each run
        return _MEMO[memo_key]
    try:
        saved = torch.load(cache_file, weights_only=True)
        intact = saved.get("checksum") == _checksum(saved)
    except Exception as err:  # a damaged cache is rebuilt, never trusted
        print(f"Ignoring unreadable cache {cache_file.name} ({one_line(err)}); rebuilding it.")
        return None
    if not intact:
        print(f"Ignoring cache {cache_file.name}: its checksum does not match (damaged on disk); rebuilding it.")
        return None
    result = ImageSet(saved["images"], saved["labels"], classes, saved["files"], [tuple(s) for s in saved["skipped"]])
    if result.skipped and progress:
        print(f"{len(result.skipped)} unreadable file(s) in {_printable(str(folder))} were skipped when its cache "
              f"was built (listed in ImageSet.skipped).")
    _MEMO[memo_key] = result
    while len(_MEMO) > 2:
        _MEMO.pop(next(iter(_MEMO)))
    return result


def _save_cache(data: ImageSet, cache_file: Path) -> None:
    """Write the cache and its checksum atomically, then drop older caches of the same folder and size.
    A failed write (full disk, a read-only folder) is a one-line warning: the run goes on with the images in memory."""
    try:
        saved = {"images": data.images, "labels": data.labels, "files": data.files,
                 "skipped": [list(s) for s in data.skipped]}
        with atomic_path(cache_file) as tmp:
            torch.save({**saved, "checksum": _checksum(saved)}, tmp)
        for stale in cache_file.parent.glob(cache_file.name.rsplit("-", 1)[0] + "-*.pt"):
            if stale != cache_file:
                stale.unlink(missing_ok=True)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as a RuntimeError
        print(f"Warning: could not save the decode cache {cache_file} ({one_line(err)}); this run goes on "
              f"and the next one decodes again.")


# Train / validation split and the test set ---------------------------------------------------------------------
def split_indices(labels: torch.Tensor, val_fraction: float = 0.2, seed: int = 42,
                  classes: list[str] | None = None):
    """Class-balanced, seeded split: each class gives round(val_fraction * n_c) images to validation. A class
    (each of `classes`, when given) left with no validation or no training image is a `DataError` naming it."""
    if not 0 <= val_fraction <= 1:
        raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    generator = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for c in range(len(classes)) if classes is not None else torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=generator)]
        n_val = int(round(val_fraction * len(idx)))
        if not 0 < n_val < len(idx):
            name = repr(classes[c]) if classes is not None else f"with label {c}"
            raise DataError(f"Class {name} has {len(idx)} image(s), so val_fraction={val_fraction} gives it "
                            f"{n_val} validation and {len(idx) - n_val} training images; each class needs at "
                            f"least one of each: add images to it or change val_fraction.")
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return torch.cat(train_idx).sort().values, torch.cat(val_idx).sort().values


def load_split(root: str | os.PathLike, size: int, val_fraction: float = 0.2, seed: int = 42,
               resize_to: int | None = None, verbose: bool = True, **kwargs) -> tuple[ImageSet, ImageSet]:
    """The 80/20 train/validation split of root/train. Never reads root/val (the test set). The split is checked
    on the file names before any decoding, and again after it (skipped files can leave a class too small)."""
    classes, _, labels = scan_folder(Path(root) / "train")
    split_indices(torch.tensor(labels), val_fraction, seed, classes)
    data = load_folder(Path(root) / "train", size, resize_to=resize_to, progress=verbose, **kwargs)
    train_idx, val_idx = split_indices(data.labels, val_fraction, seed, data.classes)
    train, val = data.subset(train_idx), data.subset(val_idx)
    if verbose:
        print(f"{'class':<14}{'train':>7}{'val':>7}")
        for name, n_train, n_val in zip(train.classes, train.class_counts().values(), val.class_counts().values()):
            print(f"{name:<14}{n_train:>7}{n_val:>7}")
        print(f"{'total':<14}{len(train):>7}{len(val):>7}")
    return train, val


def load_test(root: str | os.PathLike, size: int, resize_to: int | None = None,
              verbose: bool = True, **kwargs) -> ImageSet:
    """The held-out test set, root/val. The only function that reads it."""
    root = Path(root)
    classes, _, _ = scan_folder(root / "train")
    test = load_folder(root / "val", size, resize_to=resize_to, expected_classes=classes,
                       progress=verbose, **kwargs)
    if verbose:
        print(f"Test set {root / 'val'}: {len(test)} images, {len(test.skipped)} skipped")
    return test


# Serving batches -----------------------------------------------------------------------------------------------
def to_device(data: ImageSet, device: torch.device | str) -> ImageSet:
    """Move the uint8 tensor to `device` when it fits in half its free memory, else pin it on the CPU."""
    device = torch.device(device)
    images = data.images
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        images = images.to(device) if images.nbytes < free / 2 else images.pin_memory()
    elif device.type != "cpu":
        images = images.to(device)
    return replace(data, images=images, labels=data.labels.to(images.device))


def iterate_batches(data: ImageSet, batch_size: int, shuffle: bool = False,
                    generator: torch.Generator | None = None, drop_last: bool = False):
    """Yield (uint8 images, labels) index-batches of a decoded set. No decoding happens here."""
    n = len(data)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    # One copy per epoch: a per-batch CPU->GPU copy of the index blocks until the GPU is idle.
    order = order.to(data.images.device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        index = order[start:start + batch_size]
        yield data.images[index], data.labels[index]


@functools.lru_cache(maxsize=8)
def _norm_constants(mean: tuple, std: tuple, device: torch.device):
    """Made once per device: a fresh torch.tensor(..., device="cuda") per batch is a copy that syncs the stream."""
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def normalize(images: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """uint8 (0..255) or float in [0, 1], [B, 3, H, W] -> normalised float32, on the batch's device.
    The one normalisation of the repo: training batches, guided backprop and feature maps all go through it."""
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    mean_t, std_t = _norm_constants(tuple(mean), tuple(std), x.device)
    return (x - mean_t) / std_t


def denormalize(images: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """Normalised float -> uint8, for showing images."""
    mean, std = _norm_constants(tuple(mean), tuple(std), images.device)
    return ((images.float() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
