"""shared.data: scanning, the split, decode-once caching, bad input. (Finding the data, the download and the
demo set are shared.sources, tested in test_sources.py.)

Every dataset here is built under tmp_path, and the decode cache goes to a tmp folder too.
"""
import functools
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from shared import data, decode, runtime, sources


# --------------------------------------------------------------------------------------------
# Helpers and fixtures
# --------------------------------------------------------------------------------------------
def save_image(path: Path, width: int = 40, height: int = 30, mode: str = "RGB", fmt: str | None = None,
               seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, format=fmt or ("PNG" if path.suffix == ".png" else "JPEG"))
    return path


def make_dataset(root: Path, counts: dict[str, int], val_per_class: int = 2) -> Path:
    """A tiny nature_12K-shaped folder: train/<class>/*.jpg and val/<class>/*.jpg of varied sizes."""
    for c, (name, n) in enumerate(counts.items()):
        for i in range(n):
            save_image(root / "train" / name / f"{i:03d}.jpg", 30 + 7 * i % 50, 20 + 5 * i % 40, seed=100 * c + i)
        for i in range(val_per_class):
            save_image(root / "val" / name / f"{i:03d}.jpg", 50, 30, seed=999 - i)
    return root


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """The decode cache under tmp_path, and no cached set remembered from another test."""
    monkeypatch.setenv("INAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_MEMO", {})  # a cache file rewritten in place must be read again


@pytest.fixture
def decode_calls(monkeypatch):
    """Counts the image files read (by either decoder), so a test can tell a cache hit (0) from a rebuild."""
    calls = []
    original = decode._read_file

    def spy(path):
        calls.append(path)
        return original(path)

    monkeypatch.setattr(decode, "_read_file", spy)
    return calls


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return sources.make_demo_dataset(tmp_path_factory.mktemp("demo") / "demo_digits")


# --------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------
def test_split_is_class_balanced_and_never_reads_val(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", {"a": 10, "b": 15, "c": 20})
    (root / "val").rename(root / "not_val")  # load_split must not need the test set
    train, val = data.load_split(root, 32, val_fraction=0.2, seed=1, cache_dir=tmp_path / "cache")
    assert val.class_counts() == {"a": 2, "b": 3, "c": 4}
    assert train.class_counts() == {"a": 8, "b": 12, "c": 16}
    assert not set(train.files) & set(val.files)
    assert len(set(train.files) | set(val.files)) == 45
    assert train.images.shape == (36, 3, 32, 32) and train.images.dtype == torch.uint8
    table = capsys.readouterr().out
    assert "class" in table and "total" in table and "36" in table  # the per-class counts are printed


def test_split_is_seeded_and_reproducible(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": 12, "b": 12})
    load = functools.partial(data.load_split, root, 32, cache_dir=tmp_path / "cache", verbose=False)
    (t1, v1), (t2, v2), (_, v3) = load(seed=7), load(seed=7), load(seed=8)
    assert v1.files == v2.files and t1.files == t2.files
    assert torch.equal(v1.images, v2.images)
    assert v1.files != v3.files


@pytest.mark.parametrize("counts, val_fraction, culprit", [({"a": 5, "b": 2}, 0.2, r"'b' has 2 image\(s\)"),
                                                           ({"a": 5, "b": 5}, 0.0, r"'a' has 5 image\(s\)"),
                                                           ({"a": 5, "b": 5}, 1.0, "0 training images")])
def test_a_split_that_leaves_a_class_without_validation_or_training_images_is_an_error(
        tmp_path, decode_calls, counts, val_fraction, culprit):
    root = make_dataset(tmp_path / "ds", counts)
    with pytest.raises(data.DataError, match=culprit):
        data.load_split(root, 32, val_fraction=val_fraction)
    assert decode_calls == []  # said before any decoding


def test_a_class_emptied_by_skipped_files_is_an_error_after_decoding(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": 5, "b": 5})
    for path in (root / "train" / "b").iterdir():
        path.write_bytes(b"not an image")
    with pytest.raises(data.DataError, match="'b' has 0 image"):
        data.load_split(root, 32, verbose=False)


def test_load_test_reads_val(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3}, val_per_class=4)
    test = data.load_test(root, 32, cache_dir=tmp_path / "cache", verbose=False)
    assert len(test) == 8 and test.classes == ["a", "b"]
    assert all(f.startswith(("a/", "b/")) for f in test.files)


# --------------------------------------------------------------------------------------------
# Decode once: cache reuse and invalidation
# --------------------------------------------------------------------------------------------
def test_second_load_comes_from_the_cache(tmp_path, decode_calls):
    root = make_dataset(tmp_path / "ds", {"a": 4, "b": 4})
    first = data.load_folder(root / "train", 32, progress=False)
    assert len(decode_calls) == 8
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1  # $INAT_CACHE is honoured
    decode_calls.clear()
    second = data.load_folder(root / "train", 32, progress=False)
    assert decode_calls == []  # nothing decoded
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert first.files == second.files and first.classes == second.classes


@pytest.mark.parametrize("change", ["add", "remove", "modify", "same size, new pixels", "size", "resize_to"])
def test_cache_is_rebuilt_when_files_or_size_change(tmp_path, decode_calls, change):
    root = make_dataset(tmp_path / "ds", {"a": 4, "b": 4})
    folder, size, resize_to = root / "train", 32, None
    data.load_folder(folder, size, progress=False)
    decode_calls.clear()
    if change == "add":
        save_image(folder / "a" / "new.jpg", seed=42)
    elif change == "remove":
        (folder / "b" / "001.jpg").unlink()
    elif change == "modify":
        target = folder / "a" / "002.jpg"
        before = target.stat()
        save_image(target, 40, 30, seed=43)
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        assert target.stat().st_size != before.st_size
    elif change == "same size, new pixels":  # a BMP repainted (same byte size) used to serve the old pixels
        target = folder / "a" / "002.jpg"
        save_image(target, seed=7, fmt="BMP")  # a BMP under a .jpg name decodes all the same
        data.load_folder(folder, size, progress=False)
        before = target.stat().st_size
        decode_calls.clear()
        save_image(target, seed=8, fmt="BMP")
        assert target.stat().st_size == before
    elif change == "size":
        size = 48
    else:
        resize_to = 40
    rebuilt = data.load_folder(folder, size, resize_to=resize_to, progress=False)
    assert len(decode_calls) == len(rebuilt) + len(rebuilt.skipped)
    assert rebuilt.images.shape[-1] == size
    assert len(rebuilt) == {"add": 9, "remove": 7}.get(change, 8)
    if change in ("add", "remove", "modify", "same size, new pixels"):  # the stale cache of the same folder and size is replaced
        assert len(list((tmp_path / "cache").glob("*.pt"))) == 1


@pytest.mark.parametrize("where", ["same path", "another path"])
def test_a_copy_with_new_mtimes_reuses_the_cache(tmp_path, decode_calls, where):
    """A zip unzipped again (each Colab runtime does) has new mtimes and the same content: no second decode."""
    root = make_dataset(tmp_path / "ds", {"a": 4, "b": 4})
    first = data.load_folder(root / "train", 32, progress=False)
    copy = root if where == "same path" else tmp_path / "elsewhere" / "ds"
    shutil.copytree(root, tmp_path / "fresh", copy_function=shutil.copy)  # copy: new mtimes
    if where == "same path":
        shutil.rmtree(root)
    copy.parent.mkdir(exist_ok=True)
    (tmp_path / "fresh").rename(copy)
    for path in copy.rglob("*"):
        os.utime(path, (time.time() + 3600,) * 2)
    decode_calls.clear()
    again = data.load_folder(copy / "train", 32, progress=False)
    assert decode_calls == []
    assert torch.equal(again.images, first.images) and again.files == first.files
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1


def test_damaged_names_in_the_cache_fail_its_checksum(tmp_path, decode_calls, capsys):
    """Pixels intact, names swapped: every label would be tied to the wrong file, silently."""
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})
    first = data.load_folder(root / "train", 32, progress=False)
    (cache_file,) = (tmp_path / "cache").glob("*.pt")
    saved = torch.load(cache_file, weights_only=True)
    saved["files"] = saved["files"][::-1]
    torch.save(saved, cache_file)
    decode_calls.clear()
    again = data.load_folder(root / "train", 32, progress=False)
    assert len(decode_calls) == 6 and again.files == first.files
    assert "checksum does not match" in capsys.readouterr().out


def test_damaged_cache_is_rebuilt(tmp_path, decode_calls, capsys):
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})
    data.load_folder(root / "train", 32, progress=False)
    (cache_file,) = (tmp_path / "cache").glob("*.pt")
    cache_file.write_bytes(b"not a torch file")
    decode_calls.clear()
    assert len(data.load_folder(root / "train", 32, progress=False)) == 6
    assert len(decode_calls) == 6 and "rebuilding" in capsys.readouterr().out


def test_overwritten_pixels_in_the_cache_fail_its_checksum(tmp_path, decode_calls, capsys):
    root = make_dataset(tmp_path / "ds", {"a": 4, "b": 4})
    first = data.load_folder(root / "train", 32, progress=False)
    (cache_file,) = (tmp_path / "cache").glob("*.pt")
    raw = bytearray(cache_file.read_bytes())
    start = raw.find(first.images.numpy().tobytes()[:256])  # where the pixels are stored
    assert start > 0
    raw[start:start + 5000] = bytes(255 - b for b in raw[start:start + 5000])
    cache_file.write_bytes(raw)
    decode_calls.clear()
    again = data.load_folder(root / "train", 32, progress=False)
    assert len(decode_calls) == 8  # rebuilt, not trusted
    assert torch.equal(again.images, first.images)
    report = capsys.readouterr().out
    assert "checksum" in report and "rebuilding" in report and len(report.strip().splitlines()) == 1


def test_a_cache_folder_that_cannot_be_made_is_a_warning_before_decoding(tmp_path, monkeypatch, capsys):
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})
    (tmp_path / "a_file").write_text("a file where the cache folder would go")
    printed_before_each_read = []
    real_read = decode._read_file
    monkeypatch.setattr(decode, "_read_file", lambda path: printed_before_each_read.append(capsys.readouterr().out)
                        or real_read(path))
    loaded = data.load_folder(root / "train", 32, cache_dir=tmp_path / "a_file" / "cache", progress=False)
    assert len(loaded) == 6 and len(printed_before_each_read) == 6
    warning = printed_before_each_read[0]
    assert warning.startswith("Warning: cannot write the decode cache") and len(warning.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the test above covers the probe")
def test_a_read_only_cache_folder_is_a_warning_and_the_run_goes_on(tmp_path, capsys):
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})
    cache = tmp_path / "read_only"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        assert len(data.load_folder(root / "train", 32, cache_dir=cache, progress=False)) == 6
    finally:
        cache.chmod(0o755)
    assert "cannot write the decode cache" in capsys.readouterr().out and not list(cache.iterdir())


def test_a_failed_cache_save_is_a_warning_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})

    def disk_full(obj, path):
        Path(path).write_bytes(b"half a cache")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(data.torch, "save", disk_full)
    assert len(data.load_folder(root / "train", 32, progress=False)) == 6
    assert "could not save the decode cache" in capsys.readouterr().out
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written file left behind


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------
def test_every_bad_input(tmp_path, capsys):
    folder = tmp_path / "ds" / "train"
    good = {
        "gray.jpg": save_image(folder / "a" / "gray.jpg", mode="L"),
        "cmyk.jpg": save_image(folder / "a" / "cmyk.jpg", mode="CMYK"),
        "rgba.png": save_image(folder / "a" / "rgba.png", mode="RGBA"),
        "palette.png": save_image(folder / "a" / "palette.png", mode="P"),
        "png_named.jpg": save_image(folder / "b" / "png_named.jpg", fmt="PNG"),  # a .png among .jpg
        "plain.jpg": save_image(folder / "b" / "plain.jpg", 61, 23),
    }
    # 16-bit PNG and an animated GIF: decoded as uint8 RGB, one frame.
    Image.fromarray((np.arange(30 * 40, dtype=np.uint16).reshape(30, 40) * 50)).save(folder / "b" / "deep.png")
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue")]
    frames[0].save(folder / "b" / "anim.gif", save_all=True, append_images=frames[1:])
    good_names = set(good) | {"deep.png", "anim.gif"}

    jpeg = (folder / "b" / "plain.jpg").read_bytes()
    bad = {"corrupt.jpg": b"\xff\xd8\xff\xe0" + bytes(np.random.default_rng(0).integers(0, 256, 400, dtype=np.uint8)),
           "truncated.jpg": jpeg[: len(jpeg) // 2],
           "empty.jpg": b"",
           "renamed.jpg": b"name,score\nthis is a csv file renamed to .jpg\n"}
    for name, payload in bad.items():
        (folder / "a" / name).write_bytes(payload)
    for stray in (".DS_Store", "Thumbs.db", "notes.txt", "._hidden.jpg"):  # ignored, not reported
        (folder / "a" / stray).write_bytes(b"junk")

    loaded = data.load_folder(folder, 32, progress=False)
    names = {Path(f).name for f in loaded.files}
    assert names == good_names
    assert loaded.images.shape == (len(good_names), 3, 32, 32) and loaded.images.dtype == torch.uint8
    assert {Path(path).name for path, _ in loaded.skipped} == set(bad)
    assert all(Path(path).is_absolute() and reason for path, reason in loaded.skipped)
    report = capsys.readouterr().out
    assert f"Skipped {len(bad)} unreadable file(s)" in report
    assert all(name in report for name in bad)

    by_name = dict(zip((Path(f).name for f in loaded.files), loaded.images))
    gray = by_name["gray.jpg"]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])  # grayscale -> 3 equal channels
    assert by_name["deep.png"].max() > 200  # scaled from 16 bit, not wrapped around
    gif = by_name["anim.gif"].float().mean(dim=(1, 2))
    assert gif[0] > 200 and gif[2] < 50  # the first (red) frame

    # Skipped files survive the cache round trip, so a second run reports them too.
    again = data.load_folder(folder, 32, progress=False)
    assert again.skipped == loaded.skipped


def test_a_file_name_that_is_not_utf8_is_read(tmp_path, capsys):
    folder = tmp_path / "ds" / "train"
    save_image(folder / "a" / "plain.jpg")
    save_image(folder / "b" / "other.jpg", seed=1)
    accented = os.path.join(os.fsencode(folder / "a"), b"caf\xe9.jpg")  # Latin-1, as an old camera or zip writes it
    with open(accented, "wb") as out:
        out.write((folder / "a" / "plain.jpg").read_bytes())
    with open(os.path.join(os.fsencode(folder / "b"), b"broken\xff.jpg"), "wb") as out:
        out.write(b"not an image")

    loaded = data.load_folder(folder, 32, progress=False)
    assert "a/caf\udce9.jpg" in loaded.files  # surrogate-escaped: os.fsencode gives back the real name
    assert os.path.exists(os.fsencode(folder / loaded.files[loaded.files.index("a/caf\udce9.jpg")]))
    assert [Path(path).name for path, _ in loaded.skipped] == ["broken\udcff.jpg"]
    capsys.readouterr().out.encode("utf-8")  # the report prints (a surrogate would not encode)
    again = data.load_folder(folder, 32, progress=False)  # and the cache round trip keeps the names
    assert again.files == loaded.files and again.skipped == loaded.skipped


def test_an_image_over_pils_pixel_limit_is_skipped_before_decoding(tmp_path, monkeypatch):
    folder = tmp_path / "ds" / "train"
    save_image(folder / "a" / "small.jpg", 40, 30)
    save_image(folder / "a" / "large.jpg", 60, 40)  # 2,400 pixels
    save_image(folder / "b" / "huge.png", 100, 60)  # 6,000 pixels: PIL itself refuses to open it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)
    loaded = data.load_folder(folder, 32, progress=False)
    assert [Path(f).name for f in loaded.files] == ["small.jpg"]
    reasons = {Path(path).name: reason for path, reason in loaded.skipped}
    assert set(reasons) == {"large.jpg", "huge.png"}
    assert "60x40 = 2,400 pixels is over PIL's Image.MAX_IMAGE_PIXELS (2,000)" in reasons["large.jpg"]
    assert reasons["huge.png"].startswith("not decoded:") and "decompression bomb" in reasons["huge.png"]


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of width x height black pixels: tens of KB that decode to width*height*3 bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\0" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row * 1000) for _ in range(height // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_never_decoded(tmp_path, monkeypatch):
    folder = tmp_path / "ds" / "train"
    save_image(folder / "a" / "fine.jpg")
    bomb = folder / "b" / "bomb.png"
    bomb.parent.mkdir(parents=True)
    bomb.write_bytes(png_declaring(20000, 20000))  # 1.2 GB once decoded to RGB
    assert bomb.stat().st_size < 400_000
    real_decode = decode._decode_other
    monkeypatch.setattr(decode, "_decode_other", lambda payload: pytest.fail("the bomb reached a decoder")
                        if payload.startswith(b"\x89PNG") else real_decode(payload))
    loaded = data.load_folder(folder, 32, progress=False)
    assert [Path(path).name for path, _ in loaded.skipped] == ["bomb.png"]
    assert "not decoded" in loaded.skipped[0][1] and "400000000 pixels" in loaded.skipped[0][1]


def test_missing_train_or_val_names_the_path(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere" / "train")):
        data.load_split(tmp_path / "nowhere", 32)
    (root / "val").rename(root / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"val is missing.*INAT_DATA"):
        data.load_test(root, 32)


def test_empty_class_folder_is_an_error(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})
    (root / "train" / "c").mkdir()
    (root / "train" / "c" / ".DS_Store").write_bytes(b"junk")  # stray files do not count as images
    with pytest.raises(data.DataError, match=r"train/c has no images"):
        data.load_split(root, 32)


def test_different_class_lists_are_an_error(tmp_path):
    root = make_dataset(tmp_path / "ds", {"a": 3, "b": 3})
    (root / "val" / "b").rename(root / "val" / "B")
    with pytest.raises(data.DataError, match=r"only in train/: \['b'\]"):
        data.load_test(root, 32)


def test_a_folder_without_class_folders_is_an_error(tmp_path):
    (tmp_path / "ds" / "train").mkdir(parents=True)
    save_image(tmp_path / "ds" / "train" / "loose.jpg")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        data.load_split(tmp_path / "ds", 32)


def test_demo_dataset_loads_through_the_real_path(demo_root, tmp_path):
    train, val = data.load_split(demo_root, 32, cache_dir=tmp_path / "cache", verbose=False)
    test = data.load_test(demo_root, 32, cache_dir=tmp_path / "cache", verbose=False)
    assert train.classes == test.classes == [f"digit_{i}" for i in range(10)]
    assert not train.skipped and not test.skipped
    assert len(test) == 200 and abs(len(val) / (len(train) + len(val)) - 0.2) < 0.01


# --------------------------------------------------------------------------------------------
# Atomic writes (runtime.atomic_path), which the cache, results and checkpoints use
# --------------------------------------------------------------------------------------------
def test_atomic_writes_get_a_new_files_normal_permissions(tmp_path):
    old_umask = os.umask(0o027)
    try:
        runtime.save_json({"accuracy": 0.5}, tmp_path / "result.json")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == 0o640  # 0666 less the umask, not 0600


def test_the_next_write_removes_what_a_killed_write_left(tmp_path):
    target = tmp_path / "result.json"
    writer = ("import sys, time; sys.path.insert(0, sys.argv[2]); from shared.runtime import atomic_path\n"
              "with atomic_path(sys.argv[1]) as tmp:\n"
              "    tmp.write_text('half a result'); print('writing', flush=True); time.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", writer, str(target), str(Path(data.__file__).parent.parent)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.kill()  # SIGKILL: no finally block runs
    child.wait()
    (killed,) = tmp_path.glob(".result.json.*.tmp")

    def leftover(name: str, hours_old: float = 0) -> Path:
        path = tmp_path / name
        path.write_text("partial")
        os.utime(path, (time.time() - 3600 * hours_old,) * 2)
        return path

    old_foreign = leftover(".result.json.123@0000beef.aaaa.tmp", hours_old=2)  # another host, untouched for 2 h
    old_mkstemp = leftover(".result.json.k3j4h5x1.tmp", hours_old=2)  # the name format before pids were in it
    fresh_foreign = leftover(".result.json.123@0000beef.bbbb.tmp")  # its writer may still be at work
    live = leftover(f".result.json.{os.getpid()}@{runtime.HOST}.cccc.tmp")  # this process: alive
    other_target = leftover(f".other.json.{child.pid}@{runtime.HOST}.dddd.tmp")  # not this file's to judge
    runtime.save_json({"accuracy": 0.5}, target)
    remaining = {p.name for p in tmp_path.glob(".*.tmp")}
    assert remaining == {fresh_foreign.name, live.name, other_target.name}
    assert not ({killed.name, old_foreign.name, old_mkstemp.name} & remaining)
    assert json.loads(target.read_text()) == {"accuracy": 0.5}


def test_a_second_dataset_with_the_same_names_and_sizes_is_other_data(tmp_path):
    """Same names and byte sizes, other pixels: its own fingerprint, so no sweep of the first is continued."""
    first = make_dataset(tmp_path / "first", {"a": 3, "b": 3})
    second = make_dataset(tmp_path / "second", {"a": 3, "b": 3})
    for image in sorted(second.rglob("*.jpg")):
        twin = first / image.relative_to(second)
        image.write_bytes(bytes(255 - b for b in twin.read_bytes()))  # same size, every byte other
    assert data.data_fingerprint(first)["files"] != data.data_fingerprint(second)["files"]
    copy = tmp_path / "copy"
    shutil.copytree(first, copy)
    assert data.same_data(data.data_fingerprint(first), data.data_fingerprint(copy))
