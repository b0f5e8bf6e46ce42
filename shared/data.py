"""Finding, caching and serving the iNaturalist-12K images (or the embedded demo set).

Introduced in Part-A/01; every later notebook loads its data through this file.

The one idea: JPEG decoding is the slowest step of a typical pipeline, so every image is
decoded exactly once (by `shared.decode`), resized as uint8, and kept as one `[N, 3, S, S]`
uint8 tensor that is cached on disk. Training epochs only index that tensor (on the GPU when it fits).
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

with warnings.catch_warnings():  # without ipywidgets tqdm.auto falls back to a text bar; its warning is noise
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from . import decode
from .decode import BadImage, resize_uint8  # noqa: F401 (still data.BadImage, data.resize_uint8)
from .runtime import DATA_DIR, UserError, atomic_path, banner, on_colab, on_kaggle, write_problem
from .runtime import cache_dir as runtime_cache_dir

DATASET_URL = "https://storage.googleapis.com/wandb_datasets/nature_12K.zip"
INAT_CLASSES = ["Amphibia", "Animalia", "Arachnida", "Aves", "Fungi",
                "Insecta", "Mammalia", "Mollusca", "Plantae", "Reptilia"]
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEMO_MARKER = "DEMO_DATASET.txt"
CACHE_VERSION = 2  # 2: a checksum is stored with the images, and JPEGs are decoded at a reduced DCT scale
# ImageNet statistics: used for the scratch CNN too, so Part A and Part B share one normalisation.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
KAGGLE_INPUT = Path("/kaggle/input")
# A path given by the user may name the dataset or any folder above it: the search below it is
# breadth first, at most this deep (/kaggle/input/<dataset>/<folder>/inaturalist_12K is 3 levels)
# and lists at most this many folders, so that even a home folder answers in a moment.
SEARCH_DEPTH = 4
SEARCH_MAX_FOLDERS = 2000
SPLITS = ("train", "val", "test")


class DataError(UserError):
    """The dataset (or a path to it) cannot be used as it is; the message says why and what to do."""


class MissingData(DataError, FileNotFoundError):
    """A dataset folder that is not there. Still a FileNotFoundError for code that catches that."""


# --------------------------------------------------------------------------------------------
# Finding the dataset
# --------------------------------------------------------------------------------------------
def _has_splits(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "val").is_dir()


def _folders_below(top: Path):
    """`top`, then the folders below it, breadth first and sorted, at most SEARCH_DEPTH levels down.

    Skipped: hidden folders, `__MACOSX` (whose shadow copy of a dataset sorts before the real one) and
    a dataset's own split folders, which hold classes, not datasets.
    """
    level, listed = [top], 0
    for depth in range(SEARCH_DEPTH + 1):
        below = []
        for folder in level:
            yield folder
            if depth == SEARCH_DEPTH or listed >= SEARCH_MAX_FOLDERS:
                continue
            listed += 1
            try:
                with os.scandir(folder) as entries:
                    below += sorted(Path(e.path) for e in entries
                                    if e.is_dir() and not _is_junk_folder(e.name) and e.name not in SPLITS)
            except OSError:  # unreadable: not ours to search
                pass
        level = below


def _layout_problem(folder: Path) -> str:
    """What `folder` holds instead of nature_12K's train/ and val/, and what to do, in one line."""
    has = {split: (folder / split).is_dir() for split in SPLITS}
    if has["train"] and has["test"] and not has["val"]:
        return (f"{folder} has train/ and test/ but no val/: nature_12K keeps its test set in val/ (the "
                f"validation set is cut from train/), so rename {folder / 'test'} to {folder / 'val'}")
    if has["train"] != has["val"]:
        present, missing = ("train", "val") if has["train"] else ("val", "train")
        return f"{folder} has {present}/ but no {missing}/ (an unfinished unzip?)"
    return f"{folder} has no train/ and val/ folders"


def _search_root(top: Path) -> tuple[Path | None, str | None]:
    """The shallowest folder at or below `top` with train/ and val/, else None and what the nearest
    dataset-like folder (one with a train/, val/ or test/) lacks, if there is one."""
    near_miss = None
    for folder in _folders_below(top):
        if _has_splits(folder):
            return folder, None
        if near_miss is None and any((folder / split).is_dir() for split in SPLITS):
            near_miss = folder
    return None, _layout_problem(near_miss) if near_miss is not None else None


def _explicit_root(explicit: str | os.PathLike) -> Path:
    """The dataset root at or below a path the user gave (--data, INAT_DATA or the settings file's "data")."""
    top = Path(explicit).expanduser()
    where = (f"Point INAT_DATA, --data or the 'data' setting at the unzipped inaturalist_12K folder from "
             f"{DATASET_URL}, or at any folder above it")
    if not top.exists():
        raise MissingData(f"{explicit} does not exist. {where}")
    if not top.is_dir():
        raise MissingData(f"{explicit} is a file, not a folder (unzip it first). {where}")
    root, problem = _search_root(top)
    if root is None:
        problem = problem or (f"no folder with train/ and val/ at or up to {SEARCH_DEPTH} levels below {explicit} "
                              f"(hidden and __MACOSX folders are skipped)")
        raise MissingData(f"{problem}. {where}")
    return root


_FIX_LOCAL_COPY = ("Delete it and run again to download nature_12K afresh (INAT_DOWNLOAD=1), or complete it "
                   f"from {DATASET_URL}")


def find_data(path: str | os.PathLike | None = None, download: bool | None = None) -> Path:
    """Locate the dataset root (the folder with train/ and val/).

    Order: `path` or $INAT_DATA (the root or any folder above it); on Kaggle a search of
    /kaggle/input; the repo-local data/inaturalist_12K; a download (automatic on Colab, or
    `download=True` / $INAT_DOWNLOAD=1); otherwise the embedded demo dataset, announced by a banner.
    On Kaggle and Colab we never fall back to demo data: a grader there must be looking at the real
    thing. A folder that is there but unusable is a `DataError` that says why, never a silent fallback.
    """
    explicit = path or os.environ.get("INAT_DATA")
    if explicit:
        return _explicit_root(explicit)
    nearest = ""
    if on_kaggle():
        root, problem = _search_root(KAGGLE_INPUT)
        if root is not None:
            return root
        nearest = f" The nearest in {KAGGLE_INPUT}: {problem}." if problem else ""
    if download is None:
        download = on_colab() or os.environ.get("INAT_DOWNLOAD", "") == "1"
    if download:
        return download_dataset(DATA_DIR)
    local = DATA_DIR / "inaturalist_12K"
    if _has_splits(local):
        return local
    if local.exists():
        raise DataError(f"{_layout_problem(local)}. {_FIX_LOCAL_COPY}")
    if on_kaggle() or on_colab():
        raise MissingData(
            f"iNaturalist-12K not found.{nearest} On Kaggle: 'Add Input' -> search 'inaturalist 12K' (or upload "
            f"nature_12K.zip) and re-run. On Colab: call find_data(download=True). Source: {DATASET_URL}")
    root = make_demo_dataset()
    banner("DEMO DATA: iNaturalist-12K was not found, so this runs on the embedded demo set\n"
           "(scikit-learn's handwritten digits, upscaled into a nature_12K-shaped folder).\n"
           "Numbers below are NOT iNaturalist results. Set INAT_DATA=/path/to/inaturalist_12K,\n"
           "put it in data/inaturalist_12K, or run with INAT_DOWNLOAD=1 to fetch it (3.6 GB).")
    return root


def is_demo(root: str | os.PathLike) -> bool:
    return (Path(root) / DEMO_MARKER).exists()


def _count_images(folder: Path) -> int:
    """Image files in the class folders of `folder` (0 if it is missing). Names only."""
    return sum(1 for p in folder.glob("*/*") if _is_image_name(p)) if folder.is_dir() else 0


def check_complete(root: Path, min_train: int = 9000, min_val: int = 1900, advice: str = _FIX_LOCAL_COPY) -> None:
    """Raise `DataError` unless `root` looks like a complete nature_12K: train/ and val/, enough images."""
    if not _has_splits(root):
        raise DataError(f"{_layout_problem(root)}. {advice}")
    train, val = _count_images(root / "train"), _count_images(root / "val")
    if train < min_train or val < min_val:
        raise DataError(f"{root} looks incomplete: {train:,} train and {val:,} val images, where nature_12K has "
                        f"about 10,000 and 2,000. {advice}")


def download_dataset(dest: str | os.PathLike = DATA_DIR, url: str = DATASET_URL) -> Path:
    """Download and unzip nature_12K atomically: nothing appears at dest/inaturalist_12K unless complete.

    A dest/inaturalist_12K that is already there is returned when complete; when it is not (an
    interrupted unzip, a partial copy) that is reported before any download, which could not replace it.
    """
    dest = Path(dest)
    final = dest / "inaturalist_12K"
    if final.exists():
        check_complete(final)
        return final
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        zip_path = Path(tmp) / "nature_12K.zip"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(zip_path, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0)
                with tqdm(total=total, unit="B", unit_scale=True, desc="nature_12K.zip") as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
            if total and bar.n != total:  # the connection dropped: a short zip must not be unpacked
                raise OSError(f"got {bar.n:,} of {total:,} bytes")
        except OSError as err:
            raise ConnectionError(f"Could not download {url} ({err}). Download it by hand, unzip it and "
                                  f"set INAT_DATA to the inaturalist_12K folder.") from None
        try:
            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(Path(tmp) / "unzipped")
        except zipfile.BadZipFile as err:
            raise RuntimeError(f"{url} did not give a valid zip ({err}); download it again.") from None
        root, _ = _search_root(Path(tmp) / "unzipped")
        if root is None:
            raise RuntimeError(f"{url} did not contain inaturalist_12K/train and val/")
        check_complete(root, advice=f"The zip from {url} is not the full dataset; download it again.")
        os.replace(root, final)  # atomic on one filesystem
    return final


# --------------------------------------------------------------------------------------------
# The embedded demo dataset
# --------------------------------------------------------------------------------------------
def make_demo_dataset(root: str | os.PathLike | None = None, val_per_class: int = 20, seed: int = 0) -> Path:
    """Write scikit-learn's 1,797 bundled 8x8 digits as a nature_12K-shaped ImageFolder of JPEGs.

    Real data that ships with scikit-learn, so it needs no network. Images are upscaled to
    varied non-square sizes, tinted, and a few are saved as grayscale JPEGs, so the demo goes
    through the same decode/convert/resize paths as the real photos.
    """
    root = Path(root) if root else DATA_DIR / "demo_digits"
    if (root / DEMO_MARKER).exists():
        return root
    from sklearn.datasets import load_digits  # here, not at the top: importing scikit-learn takes ~1 s

    digits = load_digits()
    rng = np.random.default_rng(seed)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".demo-"))
    seen = {c: 0 for c in range(10)}
    for index in rng.permutation(len(digits.target)):
        label = int(digits.target[index])
        split = "val" if seen[label] < val_per_class else "train"
        seen[label] += 1
        ink = digits.images[index] / 16.0  # 0..1, 1 = ink
        background, colour = rng.uniform(0.6, 1.0, 3), rng.uniform(0.0, 0.5, 3)
        rgb = (1 - ink[..., None]) * background + ink[..., None] * colour
        image = Image.fromarray((rgb * 255).astype(np.uint8))
        width, height = int(rng.integers(40, 121)), int(rng.integers(32, 97))
        image = image.resize((width, height), Image.BILINEAR)
        if rng.random() < 0.1:
            image = image.convert("L")  # exercise the grayscale -> RGB path
        folder = tmp / split / f"digit_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"{index:04d}.jpg", quality=90)
    (tmp / DEMO_MARKER).write_text("Embedded demo dataset: sklearn.datasets.load_digits, upscaled. "
                                   "Not iNaturalist.\n")
    try:
        os.replace(tmp, root)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# --------------------------------------------------------------------------------------------
# Scanning a folder
# --------------------------------------------------------------------------------------------
def _is_image_name(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _is_junk_folder(name: str) -> bool:
    """Hidden folders and `__MACOSX` (a zip made on a Mac carries a shadow copy of every folder, full of
    `._` files); they are never datasets or classes."""
    return name.startswith(".") or name == "__MACOSX"


def scan_folder(folder: str | os.PathLike, expected_classes: list[str] | None = None):
    """(classes, files, labels) of an ImageFolder. Stray non-image files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingData(f"{folder} is missing. The dataset root must hold train/<class>/ and "
                          f"val/<class>/ as in nature_12K.zip; point INAT_DATA at that root.")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not _is_junk_folder(p.name))
    if not classes:
        raise MissingData(f"{folder} has no class folders; expected {folder}/<class>/*.jpg")
    if expected_classes is not None and classes != list(expected_classes):
        raise DataError(f"The class folders of {folder} differ from train/'s: "
                        f"only in train/: {sorted(set(expected_classes) - set(classes))}; "
                        f"only in {folder.name}/: {sorted(set(classes) - set(expected_classes))}. "
                        f"Rename them so that both splits have the same classes.")
    files, labels = [], []
    for label, name in enumerate(classes):
        images = sorted(p for p in (folder / name).iterdir() if _is_image_name(p))
        if not images:
            raise DataError(f"Class folder {folder / name} has no images. Remove it or restore its images.")
        files += images
        labels += [label] * len(images)
    return classes, files, labels


@dataclass
class DatasetInfo:
    """What `check_dataset` found: the class names and the image counts per split."""
    root: Path
    classes: list[str]
    train_counts: dict[str, int]
    val_counts: dict[str, int]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def check_dataset(root: str | os.PathLike) -> DatasetInfo:
    """Check a dataset root before any long work: train/ and val/ with the same >= 2 classes, every
    class with at least one image in each. Scans file names only (seconds); raises `DataError`."""
    root = Path(root)
    classes, train_files, train_labels = scan_folder(root / "train")
    if len(classes) < 2:
        raise DataError(f"{root / 'train'} has {len(classes)} class folder(s) ({', '.join(classes)}); "
                        f"a classifier needs at least 2.")
    _, val_files, val_labels = scan_folder(root / "val", expected_classes=classes)
    count = lambda labels: {name: labels.count(i) for i, name in enumerate(classes)}  # noqa: E731
    return DatasetInfo(root, classes, count(train_labels), count(val_labels))


def data_fingerprint(root: str | os.PathLike) -> dict:
    """What ties a result to its data: the resolved root and a hash of the train/ and val/ file lists.

    Names and sizes only (no pixels, no mtimes), so it is quick and survives a copy of the same files
    to another machine under the same root. Runs and checkpoints carry it; a reader compares it with
    the data in use and ignores a result made on other data.
    """
    root = Path(root).resolve()
    digest = hashlib.sha1()
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            continue
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and _is_image_name(p)):
            name = os.fsencode(path.relative_to(root)).decode("utf-8", "surrogateescape")
            digest.update(f"{name}|{path.stat().st_size}\n".encode("utf-8", "surrogateescape"))
    return {"root": str(root), "files": digest.hexdigest()[:16], "demo": is_demo(root)}


def same_data(fingerprint: dict | None, other: dict | None) -> bool:
    """True when two fingerprints name the same files (the root may differ: a copy on Drive is the same data)."""
    return bool(fingerprint and other) and fingerprint.get("files") == other.get("files")


# --------------------------------------------------------------------------------------------
# The decode-once cache (the decoding itself is shared/decode.py)
# --------------------------------------------------------------------------------------------
def _printable(text: str) -> str:
    """`text` safe to print: a file name that is not UTF-8 (kept by Python as surrogates) shows as U+FFFD."""
    return os.fsencode(text).decode("utf-8", "replace")


def _one_line(err: Exception) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


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
    """The cache file for these files at this size: names as bytes (os.fsencode), so a file name that is
    not UTF-8 still keys the cache."""
    content = hashlib.sha1(f"v{CACHE_VERSION}|{size}|{resize_to}".encode())
    for f in files:
        st = f.stat()
        content.update(os.fsencode(f.relative_to(folder)) + f"|{st.st_size}|{st.st_mtime_ns}\n".encode())
    where = hashlib.sha1(os.fsencode(folder.resolve())).hexdigest()[:10]
    tag = re.sub(r"[^\w.]", "_", f"{folder.parent.name}-{folder.name}", flags=re.ASCII)
    tag = f"{tag}-{where}-{size}" + (f"r{resize_to}" if resize_to else "")
    return cache_dir / f"{tag}-{content.hexdigest()[:12]}.pt"


def _checksum(images: torch.Tensor, labels: torch.Tensor) -> str:
    """CRC-32 of the cached tensors (about 7 GB/s: a 1.5 GB cache costs 0.2 s), to catch damage on disk
    that torch.load does not notice: it reads overwritten pixels without complaint."""
    crc = zlib.crc32(labels.contiguous().numpy(), zlib.crc32(images.contiguous().numpy()))
    return f"crc32:{crc:08x}"


def load_folder(folder: str | os.PathLike, size: int, resize_to: int | None = None,
                cache_dir: str | os.PathLike | None = None, workers: int | None = None,
                expected_classes: list[str] | None = None, progress: bool = True,
                decoder: str = "auto") -> ImageSet:
    """Decode every image of an ImageFolder once into a uint8 [N, 3, size, size] tensor, cached on disk.

    The cache is keyed on the file list (names, sizes, mtimes), `size` and `resize_to`, so it is
    reused across runs and rebuilt when any of them change, or when its checksum shows damage.
    Corrupt, truncated, empty, oversized (over PIL's Image.MAX_IMAGE_PIXELS) or renamed non-image
    files are skipped and returned in `ImageSet.skipped`. A cache folder that cannot be written is
    a warning, before any decoding, and the run goes on without a cache.

    decoder: "cpu" (PIL/libjpeg, JPEGs at a reduced DCT scale, on `workers` threads), "cuda" (nvJPEG in
    batches, resize on the GPU; other files on the CPU) or "auto" (cuda when available). It only
    matters when the cache is built: either decoder's cache serves both.

    Against cache version 1's decoder (torchvision's full-size decode, then the same resize) the
    reduced DCT scale changes pixels slightly, measured by `python tests/test_decode.py`: on 300
    synthetic 800x600 JPEGs (shared.bench.make_synthetic) a mean absolute difference of 1.08 (max 15)
    of 255 at 224 px and 1.28 (max 9) at 64 px; on the demo set 0 at 64 px (its small images are
    decoded whole, as before) and 0.44 (max 25) at 32 px.
    """
    folder = Path(folder)
    decoder = decode.choose_decoder(decoder)
    classes, files, labels = scan_folder(folder, expected_classes)
    cache_file = _cache_path(folder, files, size, resize_to,
                             Path(cache_dir or runtime_cache_dir()))
    if (cached := _load_cache(cache_file, folder, classes, progress)) is not None:
        return cached
    if (problem := write_problem(cache_file.parent)) is not None:
        print(f"Warning: cannot write the decode cache in {cache_file.parent} ({problem}); decoding without "
              f"a cache, so the next run decodes again (set INAT_CACHE to a writable folder).")
        cache_file = None
    bar = functools.partial(tqdm, total=len(files), disable=not progress, unit="img",
                            desc=f"decoding {_printable(folder.name)}/ at {size}px")
    images, keep, skipped = decode.decode_all(files, size, resize_to, decoder, workers or os.cpu_count() or 1, bar)
    _report_skipped(folder, skipped)
    result = ImageSet(images, torch.tensor([labels[i] for i in keep], dtype=torch.long),
                      classes, [str(files[i].relative_to(folder)) for i in keep], skipped)
    if cache_file is not None:
        _save_cache(result, cache_file)
    return result


def _report_skipped(folder: Path, skipped: list[tuple[str, str]]) -> None:
    if not skipped:
        return
    print(f"Skipped {len(skipped)} unreadable file(s) in {_printable(str(folder))}:")
    for path, reason in skipped[:10]:
        print(f"  {_printable(path)}: {reason}")
    if len(skipped) > 10:
        print(f"  ... and {len(skipped) - 10} more (see ImageSet.skipped)")


_MEMO: dict = {}  # (cache file, mtime) -> ImageSet, the last two loaded (typically train/ and val/)


def _remember(key, data: ImageSet) -> None:
    _MEMO[key] = data
    while len(_MEMO) > 2:
        _MEMO.pop(next(iter(_MEMO)))


def _load_cache(cache_file: Path, folder: Path, classes: list[str], progress: bool) -> ImageSet | None:
    """The cached set, or None when there is none or it is damaged (then the caller rebuilds it)."""
    if not cache_file.exists():
        return None
    memo_key = (cache_file, cache_file.stat().st_mtime_ns)
    if memo_key in _MEMO:  # a sweep's runs share one loaded cache instead of re-reading GBs each run
        return _MEMO[memo_key]
    try:
        saved = torch.load(cache_file, weights_only=True)
        intact = saved.get("checksum") == _checksum(saved["images"], saved["labels"])
    except Exception as err:  # a damaged cache is rebuilt, never trusted
        print(f"Ignoring unreadable cache {cache_file.name} ({_one_line(err)}); rebuilding it.")
        return None
    if not intact:
        print(f"Ignoring cache {cache_file.name}: its checksum does not match (damaged on disk); rebuilding it.")
        return None
    result = ImageSet(saved["images"], saved["labels"], classes, saved["files"], [tuple(s) for s in saved["skipped"]])
    if result.skipped and progress:
        print(f"{len(result.skipped)} unreadable file(s) in {_printable(str(folder))} were skipped when its cache "
              f"was built (listed in ImageSet.skipped).")
    _remember(memo_key, result)
    return result


def _save_cache(data: ImageSet, cache_file: Path) -> None:
    """Write the cache and its checksum atomically, then drop older caches of the same folder and size.

    A failed write (full disk, a folder that turned read-only) is a one-line warning: the decoded
    images are in memory and the run goes on.
    """
    try:
        with atomic_path(cache_file) as tmp:
            torch.save({"images": data.images, "labels": data.labels, "files": data.files,
                        "skipped": [list(s) for s in data.skipped],
                        "checksum": _checksum(data.images, data.labels)}, tmp)
        for stale in cache_file.parent.glob(cache_file.name.rsplit("-", 1)[0] + "-*.pt"):
            if stale != cache_file:
                stale.unlink(missing_ok=True)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as a RuntimeError
        print(f"Warning: could not save the decode cache {cache_file} ({_one_line(err)}); this run goes on "
              f"and the next one decodes again.")


# --------------------------------------------------------------------------------------------
# Train / validation split and the test set
# --------------------------------------------------------------------------------------------
def split_indices(labels: torch.Tensor, val_fraction: float = 0.2, seed: int = 42,
                  classes: list[str] | None = None):
    """Class-balanced, seeded split: each class gives round(val_fraction * n_c) images to validation.

    With `classes`, every one of them is checked, including one with no images left. A class that
    would get no validation image or no training image is a `DataError` naming it and its counts:
    training would run and then have no epoch to pick as best.
    """
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
    """The 80/20 train/validation split of root/train. Never reads root/val (the test set).

    The split is checked on the file names before any decoding, and again after it (skipped files
    can leave a class too small).
    """
    classes, _, labels = scan_folder(Path(root) / "train")
    split_indices(torch.tensor(labels), val_fraction, seed, classes)
    data = load_folder(Path(root) / "train", size, resize_to=resize_to, progress=verbose, **kwargs)
    train_idx, val_idx = split_indices(data.labels, val_fraction, seed, data.classes)
    train, val = data.subset(train_idx), data.subset(val_idx)
    if verbose:
        print(split_table(train, val))
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


def split_table(train: ImageSet, val: ImageSet) -> str:
    rows = [f"{'class':<14}{'train':>7}{'val':>7}"]
    for name, n_train, n_val in zip(train.classes, train.class_counts().values(), val.class_counts().values()):
        rows.append(f"{name:<14}{n_train:>7}{n_val:>7}")
    rows.append(f"{'total':<14}{len(train):>7}{len(val):>7}")
    return "\n".join(rows)


# --------------------------------------------------------------------------------------------
# Serving batches
# --------------------------------------------------------------------------------------------
def to_device(data: ImageSet, device: torch.device | str, max_fraction: float = 0.5) -> ImageSet:
    """Move the uint8 tensor to `device` when it fits in `max_fraction` of free memory, else pin it on the CPU."""
    device = torch.device(device)
    images = data.images
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        images = images.to(device) if images.nbytes < max_fraction * free else images.pin_memory()
    elif device.type != "cpu":
        images = images.to(device)
    return ImageSet(images, data.labels.to(device if images.device.type != "cpu" else "cpu"),
                    data.classes, data.files, data.skipped)


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
    """Made once per device: a fresh torch.tensor(..., device="cuda") per batch is a blocking copy
    that synchronises the stream, so the CPU could never queue the next step ahead of the GPU."""
    return (torch.tensor(mean, device=device).view(1, -1, 1, 1), torch.tensor(std, device=device).view(1, -1, 1, 1))


def normalize(images: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """uint8 (0..255) or float in [0, 1], [B, 3, H, W] -> normalised float32, on the batch's device.

    The one normalisation of the repo: training batches (`train.prepare_batch`), single images
    for guided backprop and feature maps all go through it.
    """
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    mean_t, std_t = _norm_constants(tuple(mean), tuple(std), x.device)
    return (x - mean_t) / std_t


def denormalize(images: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """Normalised float -> uint8, for showing images."""
    mean, std = _norm_constants(tuple(mean), tuple(std), images.device)
    return ((images.float() * std + mean).clamp(0, 1) * 255).round().to(torch.uint8)
