"""Where the images come from: the places `data.find_data` looks in, the download, the embedded demo set.

Introduced in Part-A/01. A dataset is a folder with train/<class>/ and val/<class>/ (nature_12K keeps its test set
in val/); one with train/ and test/ is read through a view of symlinks, as /kaggle/input is read-only.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

with warnings.catch_warnings():  # without ipywidgets tqdm.auto falls back to a text bar; its warning is noise
    warnings.simplefilter("ignore")
    from tqdm.auto import tqdm

from .runtime import DATA_DIR, HOST, KAGGLE_INPUT, UserError, remove_orphans, write_problem

DATASET_URL = "https://storage.googleapis.com/wandb_datasets/nature_12K.zip"
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEMO_MARKER = "DEMO_DATASET.txt"
# A path given may name the dataset or any folder above it: the breadth-first search below it goes this deep
# (/kaggle/input/<dataset>/<folder>/inaturalist_12K is 3 levels) and lists this many folders, so a home folder is quick.
SEARCH_DEPTH = 4
SEARCH_MAX_FOLDERS = 2000
SPLITS = ("train", "val", "test")
DOWNLOAD_PREFIX = ".download-"  # the work folder of a download in progress, beside its destination
PEAK_GB = 7.5  # the 3.6 GB zip and its extraction side by side, then the image caches beside the data
_POINT_AT_IT = ("Point INAT_DATA, --data or the 'data' setting at the unzipped inaturalist_12K folder "
                f"from {DATASET_URL}, or at any folder above it")
_IN_A_NOTEBOOK = ("in a notebook, run `%env INAT_DATA=/kaggle/input/<dataset>/<folders>/inaturalist_12K` (or "
                  "os.environ['INAT_DATA'] = '...') in a cell before the setup cell")
_FIX_LOCAL_COPY = ("Delete it and run again to download nature_12K afresh (INAT_DOWNLOAD=1), or complete it "
                   f"from {DATASET_URL}")


class DataError(UserError):
    """The dataset (or a path to it) cannot be used as it is; the message says why and what to do."""


class MissingData(DataError, FileNotFoundError):
    """A dataset folder that is not there. Still a FileNotFoundError for code that catches that."""


class DownloadError(DataError):
    """The download failed (no network, a stall, a short or damaged zip); nothing was left behind."""


def one_line(err: Exception) -> str:
    """An exception as one short line, for messages that promise one line."""
    return " ".join(f"{type(err).__name__}: {err}".split())[:300]


def is_image_name(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def is_junk_folder(name: str) -> bool:
    """Hidden folders and `__MACOSX` (a zip made on a Mac carries a shadow copy of every folder, full of
    `._` files); they are never datasets or classes."""
    return name.startswith(".") or name == "__MACOSX"


# Finding the dataset -------------------------------------------------------------------------------------------
def _is_dataset(folder: Path) -> bool:
    """train/ with val/, or train/ with test/ (read through a view, see `_view_with_val`)."""
    return (folder / "train").is_dir() and ((folder / "val").is_dir() or (folder / "test").is_dir())


def _layout_problem(folder: Path) -> str:
    """What `folder` holds instead of nature_12K's train/ and val/, in one line."""
    has = {split: (folder / split).is_dir() for split in SPLITS}
    if has["train"] != has["val"]:
        present, missing = ("train", "val") if has["train"] else ("val", "train")
        return f"{folder} has {present}/ but no {missing}/ (an unfinished unzip?)"
    return f"{folder} has no train/ and val/ folders"


def _subfolders(folder: Path) -> list[Path]:
    """The folders in `folder` that may hold a dataset: not hidden, not __MACOSX (whose shadow copy of a
    dataset sorts before the real one), not a split (which holds classes)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries
                          if e.is_dir() and not is_junk_folder(e.name) and e.name not in SPLITS)
    except OSError:  # unreadable: not ours to search
        return []


@dataclass
class Search:
    """What a search below one folder found: the datasets, the nearest folder that almost is one."""
    top: Path
    found: list[Path]
    near_miss: Path | None
    cut_short: bool  # SEARCH_MAX_FOLDERS were listed before the search got to the bottom


def _search(top: Path) -> Search:
    """Every dataset at or up to SEARCH_DEPTH levels below `top`, breadth first; a dataset's own folders
    are not searched further."""
    found, near_miss, listed, cut_short = [], None, 0, False
    level = [top]
    for depth in range(SEARCH_DEPTH + 1):
        below = []
        for folder in level:
            if _is_dataset(folder):
                found.append(folder)
                continue
            if near_miss is None and any((folder / split).is_dir() for split in SPLITS):
                near_miss = folder
            if depth < SEARCH_DEPTH:
                cut_short |= listed >= SEARCH_MAX_FOLDERS
                if listed < SEARCH_MAX_FOLDERS:
                    listed += 1
                    below += _subfolders(folder)
        level = below
    return Search(top, found, near_miss, cut_short)


def _symlink(link: Path, target: Path) -> None:
    """`link` -> `target`, replaced atomically when it points elsewhere (a dataset that moved)."""
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)


def _view_with_val(folder: Path) -> Path:
    """A folder of symlinks, train -> folder/train and val -> folder/test, under DATA_DIR/views (or the system's
    temporary folder when that is read-only); `folder` itself is never changed."""
    folder = folder.resolve()
    name = re.sub(r"[^\w.-]", "_", folder.name, flags=re.ASCII)
    tag = f"{name}-{hashlib.sha1(os.fsencode(folder)).hexdigest()[:8]}"
    problems = []
    for base in (DATA_DIR / "views", Path(tempfile.gettempdir()) / "inat-views"):
        view = base / tag
        try:
            view.mkdir(parents=True, exist_ok=True)
            _symlink(view / "train", folder / "train")
            _symlink(view / "val", folder / "test")
        except OSError as err:
            problems.append(f"{base}: {err.strerror or err}")
            continue
        print(f"{folder} has train/ and test/ but no val/; nature_12K keeps its test set in val/, so it is read "
              f"through {view} (train -> train, val -> test).")
        return view
    raise DataError(f"{folder} has train/ and test/ but no val/, and no view with val -> test could be made "
                    f"({'; '.join(problems)}). Set INAT_DATA_DIR to a writable folder.")


def _usable(folder: Path) -> Path:
    """A dataset folder as the loaders want it: itself, or its view when it has test/ instead of val/."""
    return folder if (folder / "val").is_dir() else _view_with_val(folder)


def _the_one(search: Search, how_to_choose: str) -> Path:
    """The dataset a search found, or a DataError naming them all when there are several."""
    if len(search.found) > 1:
        names = ", ".join(str(f) for f in search.found[:5]) + (" ..." if len(search.found) > 5 else "")
        raise DataError(f"{search.top} holds {len(search.found)} datasets ({names}); which one? {how_to_choose}")
    return _usable(search.found[0])


def given_dataset(path: str | os.PathLike) -> Path:
    """The dataset at or below a path the user gave (--data, INAT_DATA or the settings file's "data")."""
    top = Path(path).expanduser()
    if not top.exists():
        raise MissingData(f"{path} does not exist. {_POINT_AT_IT}")
    if not top.is_dir():
        raise MissingData(f"{path} is a file, not a folder (unzip it first). {_POINT_AT_IT}")
    search = _search(top)
    if search.found:
        return _the_one(search, "Point INAT_DATA, --data or the 'data' setting at that one.")
    problem = (_layout_problem(search.near_miss) if search.near_miss is not None else
               f"no folder with train/ and val/ at or up to {SEARCH_DEPTH} levels below {path} "
               f"(hidden and __MACOSX folders are skipped)")
    raise MissingData(f"{problem}. {_POINT_AT_IT}")


def attached_dataset() -> Path | None:
    """On Kaggle, the one dataset attached under /kaggle/input; None when there is none."""
    search = _search(KAGGLE_INPUT)
    return _the_one(search, f"Point INAT_DATA at it: {_IN_A_NOTEBOOK}.") if search.found else None


def nothing_attached() -> MissingData:
    """Why the search of /kaggle/input found nothing, and what to do: 'Add Input' only when nothing is attached."""
    attached = [p.name for p in _subfolders(KAGGLE_INPUT)]  # [] when it is missing
    if not attached:
        return MissingData(f"No dataset is attached to this notebook ({KAGGLE_INPUT} is empty): 'Add Input' -> "
                           f"search 'inaturalist 12K' (or upload nature_12K.zip from {DATASET_URL}) and re-run.")
    search = _search(KAGGLE_INPUT)
    nearest = f" The nearest: {_layout_problem(search.near_miss)}." if search.near_miss is not None else ""
    cut = f" (the search stopped after {SEARCH_MAX_FOLDERS} folders)" if search.cut_short else ""
    return MissingData(f"No folder with train/ and val/ within {SEARCH_DEPTH} levels of {KAGGLE_INPUT}{cut}; "
                       f"attached: {', '.join(attached[:5])}.{nearest} If the data is deeper, {_IN_A_NOTEBOOK}.")


def local_dataset() -> Path | None:
    """The repo-local DATA_DIR/inaturalist_12K; None when it is not there, a DataError when it is unusable."""
    local = DATA_DIR / "inaturalist_12K"
    if _is_dataset(local):
        return _usable(local)
    if local.exists():
        raise DataError(f"{_layout_problem(local)}. {_FIX_LOCAL_COPY}")
    return None


def is_demo(root: str | os.PathLike) -> bool:
    return (Path(root) / DEMO_MARKER).exists()


# Downloading ---------------------------------------------------------------------------------------------------
def _count_images(folder: Path) -> int:
    """Image files in the class folders of `folder` (0 if it is missing). Names only."""
    return sum(1 for p in folder.glob("*/*") if is_image_name(p)) if folder.is_dir() else 0


def check_complete(root: Path, min_train: int = 9000, min_val: int = 1900, advice: str = _FIX_LOCAL_COPY) -> None:
    """Raise `DataError` unless `root` looks like a complete nature_12K: train/ and val/, enough images."""
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DataError(f"{_layout_problem(root)}. {advice}")
    train, val = _count_images(root / "train"), _count_images(root / "val")
    if train < min_train or val < min_val:
        raise DataError(f"{root} looks incomplete: {train:,} train and {val:,} val images, where nature_12K has "
                        f"about 10,000 and 2,000. {advice}")


def _fetch(url: str, path: Path, timeout: float) -> None:
    """Download `url` to `path`; a DownloadError of one line for every way it can fail."""
    failed, advice = f"Could not download {url}", ("Download it by hand, unzip it and set INAT_DATA to the "
                                                   "inaturalist_12K folder.")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            with tqdm(total=total, unit="B", unit_scale=True, desc=path.name) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
                    os.utime(path.parent)  # alive: touched each MB, never taken for a killed one (runtime.is_orphan)
    except TimeoutError:  # socket.timeout: connected, then no data for `timeout` seconds
        raise DownloadError(f"{failed}: the connection stalled (no data for {timeout:g} s). {advice}") from None
    except (OSError, http.client.HTTPException, ValueError) as err:  # no network, HTTP errors, a dropped link
        raise DownloadError(f"{failed} ({one_line(err)}). {advice}") from None
    if total and bar.n != total:  # the connection closed early: a short zip must not be unpacked
        raise DownloadError(f"{failed}: got {bar.n:,} of {total:,} bytes. {advice}")


def _unpack(zip_path: Path, url: str) -> Path:
    """Unzip beside the zip and return the dataset in it; a DownloadError of one line when it is damaged."""
    into = zip_path.parent / "unzipped"
    try:
        with zipfile.ZipFile(zip_path) as archive:
            archive.extractall(into)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise DownloadError(f"{url} gave a damaged or truncated zip ({one_line(err)}); download it again.") from None
    except OSError as err:
        raise DownloadError(f"Could not unzip into {zip_path.parent.parent} ({err.strerror or err}); free some "
                            f"space or set INAT_DATA_DIR to another folder.") from None
    found = [folder for folder in _search(into).found if (folder / "val").is_dir()]
    if len(found) != 1:
        raise DownloadError(f"{url} did not contain one inaturalist_12K folder with train/ and val/; "
                            f"download it again.")
    return found[0]


def download_dataset(dest: str | os.PathLike | None = None, url: str = DATASET_URL, timeout: float = 60) -> Path:
    """Download and unzip nature_12K into `dest` (DATA_DIR) atomically: nothing appears at dest/inaturalist_12K
    unless complete (one there already is checked and returned). A killed download's work folder, .download-...,
    is removed by the next one. Failures are one-line `DownloadError`s."""
    dest = Path(dest or DATA_DIR)
    final = dest / "inaturalist_12K"
    if final.exists():
        check_complete(final)
        return final
    if (problem := write_problem(dest)) is not None:
        raise DownloadError(f"Cannot download into {dest} ({problem}); set INAT_DATA_DIR to a writable folder.")
    free = shutil.disk_usage(dest).free / 1e9
    print(f"Downloading nature_12K (3.6 GB) into {dest}: the zip, its extraction and the image caches need about "
          f"{PEAK_GB} GB free at the peak; {free:.1f} GB is free there.")
    if free < PEAK_GB:
        raise DownloadError(f"Only {free:.1f} GB is free in {dest}, and the download needs about {PEAK_GB} GB at "
                            f"the peak; free some space or set INAT_DATA_DIR to another folder.")
    remove_orphans(dest, DOWNLOAD_PREFIX)  # the work folders of killed downloads
    work = Path(tempfile.mkdtemp(dir=dest, prefix=f"{DOWNLOAD_PREFIX}{os.getpid()}@{HOST}.", suffix=".tmp"))
    try:
        zip_path = work / "nature_12K.zip"
        _fetch(url, zip_path, timeout)
        root = _unpack(zip_path, url)
        check_complete(root, advice=f"The zip from {url} is not the full dataset; download it again.")
        os.replace(root, final)  # atomic on one filesystem
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


# The embedded demo dataset -------------------------------------------------------------------------------------
def make_demo_dataset(root: str | os.PathLike | None = None, val_per_class: int = 20, seed: int = 0) -> Path:
    """Write scikit-learn's 1,797 bundled 8x8 digits (no network needed) as a nature_12K-shaped ImageFolder of
    JPEGs, upscaled to varied non-square sizes, tinted, a few in grayscale: the decode paths of real photos."""
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
