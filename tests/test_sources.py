"""data.find_data and shared.sources: finding the dataset (a path, Kaggle, the repo-local copy), the download,
the demo set.

Every dataset here is built under tmp_path; downloads come from a stub at the urllib boundary or from a
real HTTP server on localhost (http.server in a thread).
"""
import functools
import http.server
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from shared import data, sources
from test_data import make_dataset


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real dataset, no Kaggle/Colab, DATA_DIR (downloads, views, the demo set) under tmp_path."""
    for var in ("INAT_DATA", "INAT_DOWNLOAD", "KAGGLE_KERNEL_RUN_TYPE", "COLAB_RELEASE_TAG", "COLAB_GPU"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("INAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(data, "_MEMO", {})
    # Kaggle is simulated by its env var alone, so these tests also hold when run on Kaggle itself.
    monkeypatch.setattr(data, "on_kaggle", lambda: bool(os.environ.get("KAGGLE_KERNEL_RUN_TYPE")))


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return sources.make_demo_dataset(tmp_path_factory.mktemp("demo") / "demo_digits")


def test_data_defines_its_contract_names_and_the_rest_lives_in_sources():
    """data.find_data and data.load_folder are contract names (checks outside the repo call them), defined in
    shared.data; the other names of the data's sources live in shared.sources only, with no re-export."""
    assert data.find_data.__module__ == data.load_folder.__module__ == "shared.data"
    assert not hasattr(sources, "find_data")
    for name in ("make_demo_dataset", "download_dataset", "check_complete", "DATASET_URL", "DEMO_MARKER",
                 "IMAGE_EXTENSIONS"):
        assert hasattr(sources, name) and not hasattr(data, name), name


# --------------------------------------------------------------------------------------------
# Finding the data
# --------------------------------------------------------------------------------------------
def test_explicit_path_wins(tmp_path, monkeypatch):
    explicit = make_dataset(tmp_path / "mine" / "inaturalist_12K", {"a": 1})
    make_dataset(tmp_path / "data" / "inaturalist_12K", {"a": 1})  # the repo-local copy loses
    assert data.find_data(explicit) == explicit
    assert data.find_data(explicit.parent) == explicit  # the folder above inaturalist_12K works too
    monkeypatch.setenv("INAT_DATA", str(explicit))
    assert data.find_data() == explicit


def test_bad_explicit_path_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="INAT_DATA"):
        data.find_data(tmp_path / "typo")
    monkeypatch.setenv("INAT_DATA", str(tmp_path / "typo"))
    with pytest.raises(FileNotFoundError, match="typo"):
        data.find_data()  # never a silent fallback to the demo set


def test_a_missing_data_path_is_a_one_line_user_error(tmp_path, monkeypatch):
    for path in (tmp_path / "typo", tmp_path / "file.zip"):
        if path.suffix:
            path.write_bytes(b"PK")
        with pytest.raises(sources.DataError) as caught:
            data.find_data(path)
        assert isinstance(caught.value, sources.UserError) and len(str(caught.value).splitlines()) == 1
    assert "unzip it first" in str(caught.value)
    monkeypatch.setenv("INAT_DATA", str(tmp_path / "typo"))
    with pytest.raises(sources.DataError, match="typo does not exist"):
        data.find_data()


def test_a_path_may_name_any_folder_above_the_dataset(tmp_path):
    root = make_dataset(tmp_path / "drive" / "MyDrive" / "datasets" / "inaturalist_12K", {"a": 1})
    assert data.find_data(tmp_path / "drive") == root
    make_dataset(tmp_path / "other" / "one" / "two" / "three" / "four" / "inaturalist_12K", {"a": 1})  # too deep
    with pytest.raises(sources.DataError, match="no folder with train/ and val/ at or up to 4 levels below"):
        data.find_data(tmp_path / "other")


def macosx_shadow(root: Path) -> None:
    """What a zip made on a Mac adds: __MACOSX/<same folders>/._<file> resource forks."""
    for split in ("train", "val"):
        folder = root / split / "a"
        folder.mkdir(parents=True)
        (folder / "._000.jpg").write_bytes(b"\x00\x05\x16\x07 Mac resource fork")


def test_macosx_and_hidden_folders_are_skipped(tmp_path, monkeypatch):
    top = tmp_path / "input" / "nature-12k"
    macosx_shadow(top / "__MACOSX" / "inaturalist_12K")  # sorts before the real one
    macosx_shadow(top / ".Trash" / "inaturalist_12K")
    real = make_dataset(top / "inaturalist_12K", {"a": 1, "b": 1})
    assert data.find_data(tmp_path / "input") == real
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setattr(sources, "KAGGLE_INPUT", tmp_path / "input")
    assert data.find_data() == real


def test_a_train_and_test_dataset_is_read_through_a_view_with_val(tmp_path, monkeypatch, capsys):
    """Kaggle's /kaggle/input is read-only, so the old advice (rename test/ to val/ there) could not be
    followed. The dataset itself is never changed, read-only or not."""
    kaggle_input = tmp_path / "input"
    root = make_dataset(kaggle_input / "inat-12k" / "inaturalist_12K", {"a": 3, "b": 3}, val_per_class=2)
    (root / "val").rename(root / "test")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setattr(sources, "KAGGLE_INPUT", kaggle_input)
    view = data.find_data()
    said = capsys.readouterr().out
    assert view.is_relative_to(tmp_path / "data") and sorted(p.name for p in view.iterdir()) == ["train", "val"]
    assert (view / "val").resolve() == root / "test" and (view / "train").resolve() == root / "train"
    assert len(said.strip().splitlines()) == 1 and str(view) in said and "val -> test" in said
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    train, val = data.load_split(view, 32, verbose=False)  # class folders through the symlinks
    test = data.load_test(view, 32, verbose=False)
    assert train.classes == test.classes == ["a", "b"] and len(train) + len(val) == 6 and len(test) == 4
    assert data.find_data(root) == view  # by path too, and the view is reused


def test_without_a_writable_place_for_the_view_the_error_says_so(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds", {"a": 1, "b": 1})
    (root / "val").rename(root / "test")
    (tmp_path / "a_file").write_text("where the folders would go")
    monkeypatch.setattr(sources, "DATA_DIR", tmp_path / "a_file")
    monkeypatch.setattr(sources.tempfile, "gettempdir", lambda: str(tmp_path / "a_file"))
    with pytest.raises(sources.DataError, match="no view with val -> test could be made.*INAT_DATA_DIR") as caught:
        data.find_data(root)
    assert len(str(caught.value).splitlines()) == 1


def test_a_folder_above_several_datasets_names_them_and_asks_for_one(tmp_path, monkeypatch):
    first = make_dataset(tmp_path / "top" / "copy1" / "inaturalist_12K", {"a": 1})
    second = make_dataset(tmp_path / "top" / "more" / "copy2", {"a": 1})
    with pytest.raises(sources.DataError, match="holds 2 datasets") as caught:
        data.find_data(tmp_path / "top")
    message = str(caught.value)
    assert str(first) in message and str(second) in message and "INAT_DATA" in message
    assert len(message.splitlines()) == 1
    assert data.find_data(first) == first  # naming one of them works
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")  # two datasets attached on Kaggle: the same
    monkeypatch.setattr(sources, "KAGGLE_INPUT", tmp_path / "top")
    with pytest.raises(sources.DataError, match="holds 2 datasets.*%env INAT_DATA="):
        data.find_data()


def test_on_kaggle_data_deeper_than_the_search_names_inat_data_not_add_input(tmp_path, monkeypatch):
    deep = tmp_path / "input" / "my-upload" / "a" / "b" / "c" / "d" / "inaturalist_12K"
    make_dataset(deep, {"a": 1})
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setattr(sources, "KAGGLE_INPUT", tmp_path / "input")
    with pytest.raises(sources.MissingData) as caught:
        data.find_data()
    message = str(caught.value)
    assert "Add Input" not in message and "my-upload" in message
    assert "%env INAT_DATA=" in message and "os.environ['INAT_DATA']" in message and "4 levels" in message
    assert len(message.splitlines()) == 1
    monkeypatch.setenv("INAT_DATA", str(deep))  # what the message says to do, works
    assert data.find_data() == deep


@pytest.mark.parametrize("state", ["val missing", "few images", "empty folder"])
def test_an_incomplete_local_copy_is_reported_before_any_download(tmp_path, monkeypatch, state):
    local = make_dataset(tmp_path / "data" / "inaturalist_12K", {"a": 3, "b": 3})
    if state == "val missing":
        shutil.rmtree(local / "val")
    elif state == "empty folder":
        shutil.rmtree(local / "train")
        shutil.rmtree(local / "val")
    downloads = []
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda *args, **kwargs: downloads.append(args))
    expected = {"val missing": "has train/ but no val/", "few images": "6 train and 4 val images",
                "empty folder": "has no train/ and val/"}[state]
    with pytest.raises(sources.DataError, match=expected) as caught:
        data.find_data(download=True)
    assert "Delete it" in str(caught.value) and downloads == []
    if state != "few images":  # without a download asked for, an unusable local copy is not skipped silently
        with pytest.raises(sources.DataError, match=expected):
            data.find_data()


def test_repo_local_copy_is_found(tmp_path):
    local = make_dataset(tmp_path / "data" / "inaturalist_12K", {"a": 1})
    assert data.find_data() == local


def test_demo_fallback_with_banner(tmp_path, monkeypatch, demo_root, capsys):
    monkeypatch.setattr(sources, "DATA_DIR", demo_root.parent)  # the demo set is already built there
    root = data.find_data()
    assert root == demo_root and sources.is_demo(root)
    assert "DEMO DATA" in capsys.readouterr().out
    assert not sources.is_demo(make_dataset(tmp_path / "real", {"a": 1}))


@pytest.mark.parametrize("platform, advice", [("KAGGLE_KERNEL_RUN_TYPE", "is empty.*'Add Input'"),
                                              ("COLAB_RELEASE_TAG", "On Colab.*download=True")])
def test_never_a_silent_demo_on_kaggle_or_colab(tmp_path, monkeypatch, platform, advice):
    monkeypatch.setenv(platform, "Interactive")
    monkeypatch.setattr(sources, "KAGGLE_INPUT", tmp_path / "input")  # nothing attached
    with pytest.raises(FileNotFoundError, match=advice):
        data.find_data(download=False)
    assert not (tmp_path / "data" / "demo_digits").exists()


@pytest.mark.parametrize("asked_by", ["COLAB_RELEASE_TAG", "INAT_DOWNLOAD"])
def test_colab_and_inat_download_fail_in_one_line_offline(tmp_path, monkeypatch, asked_by):
    monkeypatch.setenv(asked_by, "1")  # on Colab the download is automatic

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(sources.urllib.request, "urlopen", offline)
    with pytest.raises(sources.DownloadError, match="INAT_DATA") as caught:
        data.find_data()
    assert len(str(caught.value).splitlines()) == 1
    assert not (tmp_path / "data" / "demo_digits").exists()
    assert not (tmp_path / "data" / "inaturalist_12K").exists()


# --------------------------------------------------------------------------------------------
# Download: atomic and checked
# --------------------------------------------------------------------------------------------
def zip_of(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, path.relative_to(folder.parent))
    return buffer.getvalue()


class FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes, length: int | None = None):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload) if length is None else length)}


def serve(monkeypatch, payload: bytes, length: int | None = None):
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda url, timeout=None: FakeResponse(payload, length))


@pytest.fixture
def nature_zip(tmp_path):
    return zip_of(make_dataset(tmp_path / "src" / "inaturalist_12K", {"a": 3, "b": 3}))


def assert_nothing_left(dest: Path):
    assert not (dest / "inaturalist_12K").exists()
    assert not list(dest.glob(".download-*"))


def test_download_unpacks_a_complete_zip(tmp_path, monkeypatch, nature_zip):
    serve(monkeypatch, nature_zip)
    monkeypatch.setattr(sources, "check_complete", functools.partial(sources.check_complete, min_train=6, min_val=4))
    root = data.find_data(download=True)
    assert root == tmp_path / "data" / "inaturalist_12K"
    assert sorted(p.name for p in (root / "train").iterdir()) == ["a", "b"]
    assert not list(root.parent.glob(".download-*"))
    serve(monkeypatch, b"")  # already there: no second download
    assert sources.download_dataset(tmp_path / "data") == root


def test_download_checks_completeness(tmp_path, monkeypatch, nature_zip):
    serve(monkeypatch, nature_zip)  # 6 train images: far below the real thresholds
    with pytest.raises(sources.DataError, match="incomplete"):
        sources.download_dataset(tmp_path / "data")
    assert_nothing_left(tmp_path / "data")


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch, nature_zip):
    serve(monkeypatch, nature_zip[: len(nature_zip) // 2], length=len(nature_zip))  # connection dropped
    with pytest.raises(sources.DownloadError, match="bytes"):
        sources.download_dataset(tmp_path / "data")
    assert_nothing_left(tmp_path / "data")


def test_corrupt_zip_leaves_nothing(tmp_path, monkeypatch):
    serve(monkeypatch, b"PK\x03\x04 this is not really a zip")
    with pytest.raises(sources.DownloadError, match="zip"):
        sources.download_dataset(tmp_path / "data")
    assert_nothing_left(tmp_path / "data")


def test_zip_without_the_dataset_leaves_nothing(tmp_path, monkeypatch):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("wrong zip")
    serve(monkeypatch, zip_of(tmp_path / "other"))
    with pytest.raises(sources.DownloadError, match="train/ and val/"):
        sources.download_dataset(tmp_path / "data")
    assert_nothing_left(tmp_path / "data")


# --------------------------------------------------------------------------------------------
# The embedded demo dataset
# --------------------------------------------------------------------------------------------
def test_demo_dataset_is_shaped_like_nature_12k(demo_root):
    assert sources.is_demo(demo_root)
    classes = [f"digit_{i}" for i in range(10)]
    sizes = set()
    for split, low, high in (("train", 1500, 1700), ("val", 150, 250)):
        assert sorted(p.name for p in (demo_root / split).iterdir()) == classes
        files = list((demo_root / split).glob("*/*"))
        assert all(f.suffix == ".jpg" for f in files)
        assert low <= len(files) <= high
        for f in files[::40]:
            with Image.open(f) as image:
                sizes.add(image.size)
    assert len(sizes) > 10  # varied sizes ...
    assert sum(w != h for w, h in sizes) > len(sizes) // 2  # ... mostly non-square
    assert sources.make_demo_dataset(demo_root) == demo_root  # built once, then reused


# --------------------------------------------------------------------------------------------
# Download failures against a real HTTP server: each one line, nothing left behind
# --------------------------------------------------------------------------------------------
@pytest.fixture
def server(nature_zip):
    """http://127.0.0.1:<port>/<how>: /full serves the zip, /short promises more bytes than it sends, /stall
    sends a little and then nothing until the test ends, /truncated serves the first half as if whole."""
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            payload = nature_zip[: len(nature_zip) // 2] if self.path == "/truncated" else nature_zip
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.path in ("/full", "/truncated"):
                self.wfile.write(payload)
            elif self.path == "/short":
                self.wfile.write(payload[:1000])
            elif self.path == "/stall":
                self.wfile.write(payload[:1000])
                self.wfile.flush()
                release.wait(60)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    release.set()
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("how, expected", [("no network", "Could not download.*(refused|URLError)"),
                                           ("/short", r"IncompleteRead|got 1,000 of"),
                                           ("/stall", r"stalled \(no data for 0.5 s\)"),
                                           ("/truncated", "damaged or truncated zip")])
def test_each_download_failure_is_one_line_and_leaves_nothing(tmp_path, server, how, expected):
    url = f"http://127.0.0.1:{closed_port()}/nature_12K.zip" if how == "no network" else server + how
    started = time.monotonic()
    with pytest.raises(sources.DownloadError, match=expected) as caught:
        sources.download_dataset(tmp_path / "data", url=url, timeout=0.5)
    assert isinstance(caught.value, sources.UserError) and len(str(caught.value).splitlines()) == 1
    assert time.monotonic() - started < 30
    assert_nothing_left(tmp_path / "data")


def test_a_download_from_the_server_unpacks(tmp_path, monkeypatch, server):
    monkeypatch.setattr(sources, "check_complete", functools.partial(sources.check_complete, min_train=6, min_val=4))
    root = sources.download_dataset(tmp_path / "data", url=server + "/full", timeout=5)
    assert sorted(p.name for p in (root / "val").iterdir()) == ["a", "b"]


def test_the_next_download_removes_what_a_killed_download_left(tmp_path, monkeypatch, server):
    dest = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                              "from shared import sources; sources.download_dataset(sys.argv[2], url=sys.argv[3])",
                              str(Path(sources.__file__).parent.parent), str(dest), server + "/stall"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(dest.glob(".download-*/nature_12K.zip")) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.kill()  # SIGKILL: no finally block runs
    child.wait()
    (killed,) = dest.glob(".download-*")
    old_format = dest / ".download-k3j4h5x1"  # TemporaryDirectory's name, before pids were in it
    old_format.mkdir()
    os.utime(old_format, (time.time() - 7200,) * 2)
    live = dest / f".download-{os.getpid()}@{sources.HOST}.abcd1234.tmp"  # this process: alive, kept
    live.mkdir()
    monkeypatch.setattr(sources, "check_complete", functools.partial(sources.check_complete, min_train=6, min_val=4))
    sources.download_dataset(dest, url=server + "/full", timeout=5)
    assert [p.name for p in dest.glob(".download-*")] == [live.name]


def test_a_download_without_7_5_gb_free_is_refused_before_it_starts(tmp_path, monkeypatch, capsys):
    downloads = []
    monkeypatch.setattr(sources.urllib.request, "urlopen", lambda *args, **kwargs: downloads.append(args))
    monkeypatch.setattr(sources.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100e9, 96e9, 4e9))
    with pytest.raises(sources.DownloadError, match=r"^Only 4\.0 GB is free in .*about 7\.5 GB at the peak"):
        sources.download_dataset(tmp_path / "data")
    assert downloads == [] and "need about 7.5 GB free at the peak; 4.0 GB is free there" in capsys.readouterr().out
    assert_nothing_left(tmp_path / "data")
