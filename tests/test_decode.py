"""shared.decode, the decoders behind `data.load_folder`: reduced-scale JPEGs, corrupt JPEGs, torch's threads,
the decoder choice.

Run by hand, `python tests/test_decode.py` measures the cache build side by side with a plain PIL
pipeline, with cache version 1's decoder and without simplejpeg (images/s and pixel differences); it is
not a test, so that no timing can fail a run on a busy machine.
"""
import contextlib
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import simplejpeg
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from shared import data, decode, sources  # noqa: E402
from shared.runtime import UserError  # noqa: E402


def photo_like(path: Path, width: int = 800, height: int = 600, seed: int = 0, mode: str = "RGB") -> Path:
    """A JPEG with smooth colour waves, blotches and fine noise: what a photo costs, in small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    waves = np.stack([np.sin(0.02 * x + 0.013 * y + k) for k in (0, 2, 4)], -1) * 60 + 128
    coarse = rng.normal(128, 40, (height // 8, width // 8, 3)).clip(0, 255).astype(np.uint8)
    blotches = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32) - 128
    pixels = (waves + blotches + rng.normal(0, 6, (height, width, 3))).clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path, quality=85)
    return path


def full_size_decode(path: Path, size: int, resize_to: int | None = None) -> torch.Tensor:
    """Cache version 1's decoder: torchvision decodes the whole JPEG, then the same antialiased resize."""
    return decode.resize_uint8(decode._decode_other(path.read_bytes()), size, resize_to)


def mean_and_max_difference(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    difference = (a.int() - b.int()).abs()
    return difference.float().mean().item(), int(difference.max())


def pil_decode(path: Path, size: int, resize_to: int | None = None) -> torch.Tensor:
    """The decoder before simplejpeg: PIL's draft() for a JPEG at least twice the target, else torchvision
    whole; then the same resize."""
    at_least = resize_to or size
    with Image.open(path) as image:
        if min(image.size) < 2 * at_least:
            return full_size_decode(path, size, resize_to)
        image.draft("RGB", (at_least, at_least))
        rgb = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    return decode.resize_uint8(rgb, size, resize_to)


def corrupt_scan_data(data: bytes) -> bytes:
    """The JPEG with bits flipped over a quarter of its entropy-coded data, from the middle on. Markers, and
    the byte after each 0xFF, stay as they were, so every reader still finds a whole, well-formed file."""
    scan = data.index(b"\xff\xda")
    start, end = scan + 2 + int.from_bytes(data[scan + 2:scan + 4], "big"), data.rindex(b"\xff\xd9")
    damaged = bytearray(data)
    for i in range((start + end) // 2, (start + end) // 2 + (end - start) // 4):
        if 0xFF not in (damaged[i - 1], damaged[i], damaged[i] ^ 0xAA):
            damaged[i] ^= 0xAA
    return bytes(damaged)


@contextlib.contextmanager
def without_simplejpeg():
    """decode as on a machine where simplejpeg is not installed."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "simplejpeg", None)  # `import simplejpeg` raises ImportError
        yield


@pytest.fixture
def simplejpeg_calls(monkeypatch) -> list:
    """The colorspace of each simplejpeg.decode_jpeg call that decode makes."""
    calls, real_decode_jpeg = [], simplejpeg.decode_jpeg
    monkeypatch.setattr(simplejpeg, "decode_jpeg", lambda data, **options: calls.append(options["colorspace"])
                        or real_decode_jpeg(data, **options))
    return calls


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("INAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_MEMO", {})


# --------------------------------------------------------------------------------------------
# Reduced-scale JPEG decoding
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, resize_to, scale", [(64, None, 8), (224, None, 2), (224, 256, 2), (300, None, 2)])
def test_jpegs_are_decoded_at_the_smallest_scale_that_keeps_the_target(tmp_path, monkeypatch, size, resize_to, scale):
    photo = photo_like(tmp_path / "photo.jpg")  # 800x600
    decoded_sizes = []
    real_decode_jpeg = decode._decode_jpeg
    monkeypatch.setattr(decode, "_decode_jpeg", lambda data, header, at_least: decoded_sizes.append(
        (rgb := real_decode_jpeg(data, header, at_least)).shape[1:]) or rgb)
    image = decode._decode_bytes(photo.read_bytes(), size, resize_to)
    assert decoded_sizes == [(600 // scale, 800 // scale)]  # both sides stay >= the target
    assert image.shape == (3, size, size) and image.dtype == torch.uint8
    mean, largest = mean_and_max_difference(image, full_size_decode(photo, size, resize_to))
    assert mean < 3.0 and largest < 48, (mean, largest)  # measured on this image: mean 1.1-1.7, max 7-15


def test_a_jpeg_that_cannot_be_reduced_is_decoded_whole_as_before(tmp_path):
    photo = photo_like(tmp_path / "photo.jpg")  # 800x600: a 400 px target leaves no 1/2 scale
    assert decode._draft_scale(800, 600, 400) == 1
    assert torch.equal(decode._decode_bytes(photo.read_bytes(), 400, None), full_size_decode(photo, 400))


def jpeg_of_kind(folder: Path, kind: str) -> Path:
    """A photo-like JPEG of one of the kinds a dataset holds."""
    if kind in ("gray", "CMYK"):
        return photo_like(folder / f"{kind}.jpg", mode="L" if kind == "gray" else kind)
    if kind in ("517x333", "90x70"):
        return photo_like(folder / f"{kind}.jpg", *map(int, kind.split("x")))
    photo = photo_like(folder / "photo.jpg")
    with Image.open(photo) as image:
        options = {"progressive": dict(progressive=True), "4:4:4": dict(subsampling=0),
                   "MPO": dict(format="MPO", save_all=True, append_images=[image.transpose(Image.FLIP_LEFT_RIGHT)])}
        image.save(folder / f"{kind}.jpg", **{"format": "JPEG", "quality": 85, **options.get(kind, {})})
    return folder / f"{kind}.jpg"


@pytest.mark.parametrize("size, resize_to", [(32, None), (64, None), (224, None), (224, 256)])
@pytest.mark.parametrize("kind", ["4:2:0", "4:4:4", "progressive", "gray", "CMYK", "MPO", "517x333", "90x70"])
def test_simplejpeg_keeps_the_pixels_of_the_decoder_before_it(tmp_path, simplejpeg_calls, kind, size, resize_to):
    """Asked for PIL's DCT scale, simplejpeg gives PIL's pixels exactly (torchvision's where the JPEG is decoded
    whole); a CMYK JPEG is only checked by it, and PIL converts it as before."""
    path = jpeg_of_kind(tmp_path, kind)
    image = decode._decode_bytes(path.read_bytes(), size, resize_to)
    assert simplejpeg_calls == ["CMYK" if kind == "CMYK" else "RGB"]
    assert torch.equal(image, pil_decode(path, size, resize_to))
    with without_simplejpeg():
        assert torch.equal(decode._decode_bytes(path.read_bytes(), size, resize_to), image)


def test_a_jpeg_simplejpeg_cannot_decode_is_left_to_pil(tmp_path, monkeypatch):
    photo = photo_like(tmp_path / "photo.jpg")
    calls = []

    def cannot(data, **options):
        calls.append(options["strict"])
        raise ValueError("Unsupported JPEG process: SOF type 0xcb")

    monkeypatch.setattr(simplejpeg, "decode_jpeg", cannot)
    assert torch.equal(decode._decode_bytes(photo.read_bytes(), 64, None), pil_decode(photo, 64))
    assert calls == [True, False]  # an error even when not strict: not a warning, so not a skip


# --------------------------------------------------------------------------------------------
# Corrupt JPEGs: skipped with libjpeg's warning, where PIL and torchvision decode them silently
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [64, 224])
def test_a_jpeg_with_corrupt_entropy_data_is_skipped_with_libjpegs_warning(tmp_path, isolated_cache, size):
    folder = tmp_path / "train"
    clean = [photo_like(folder / "a" / "photo.jpg"),  # 800x600: decoded at 1/8 (64 px) or 1/2 (224 px)
             photo_like(folder / "b" / "small.jpg", 90, 70, seed=1),  # decoded whole
             photo_like(folder / "b" / "gray.jpg", 90, 70, seed=2, mode="L")]
    for path in clean:
        damaged = path.with_name(f"corrupt_{path.name}")
        damaged.write_bytes(corrupt_scan_data(path.read_bytes()))
        with warnings.catch_warnings(), Image.open(damaged) as image, Image.open(path) as original:
            warnings.simplefilter("error")
            image.load()  # Pillow decodes it without an error or a warning, into other pixels
            assert not np.array_equal(np.asarray(image), np.asarray(original))
    loaded = data.load_folder(folder, size, progress=False, decoder="cpu")
    assert sorted(Path(f).name for f in loaded.files) == ["gray.jpg", "photo.jpg", "small.jpg"]
    reasons = {Path(path).name: reason for path, reason in loaded.skipped}
    assert sorted(reasons) == ["corrupt_gray.jpg", "corrupt_photo.jpg", "corrupt_small.jpg"]
    assert all(reason.startswith("corrupt JPEG data (libjpeg warns: Corrupt JPEG data: ")
               for reason in reasons.values())
    names = [Path(f).name for f in loaded.files]
    assert all(torch.equal(loaded.images[names.index(path.name)], pil_decode(path, size)) for path in clean)
    with pytest.raises(decode.BadImage, match=r"corrupt_small\.jpg: corrupt JPEG data \(libjpeg warns"):
        decode.read_rgb(folder / "b" / "corrupt_small.jpg")  # figures refuse it too


def test_a_corrupt_cmyk_jpeg_is_skipped_too(tmp_path):
    photo = photo_like(tmp_path / "cmyk.jpg", 120, 96, mode="CMYK")
    with pytest.raises(decode.BadImage, match=r"^corrupt JPEG data \(libjpeg warns: Corrupt JPEG data"):
        decode._decode_bytes(corrupt_scan_data(photo.read_bytes()), 32, None)


def test_without_simplejpeg_a_corrupt_jpeg_is_kept_as_the_docstring_says(tmp_path):
    damaged = corrupt_scan_data(photo_like(tmp_path / "photo.jpg").read_bytes())
    with without_simplejpeg():
        assert decode._decode_bytes(damaged, 64, None).shape == (3, 64, 64)
    with pytest.raises(decode.BadImage, match="corrupt JPEG data"):  # installed later (the setup cell): used
        decode._decode_bytes(damaged, 64, None)


@pytest.mark.parametrize("mode", ["L", "CMYK"])
def test_grayscale_and_cmyk_jpegs_come_out_rgb(tmp_path, mode):
    photo = photo_like(tmp_path / f"{mode}.jpg", mode=mode)
    image = decode._decode_bytes(photo.read_bytes(), 64, None)
    assert image.shape == (3, 64, 64)
    reference = full_size_decode(photo, 64)
    assert mean_and_max_difference(image, reference)[0] < 3.0  # measured: 0.9 (L), 1.4 (CMYK)
    if mode == "L":
        assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


# --------------------------------------------------------------------------------------------
# Float and integer images (scientific TIFFs): scaled to 0..255, or skipped with the reason
# --------------------------------------------------------------------------------------------
def ramp(top: float, dtype, width: int = 64, height: int = 6) -> np.ndarray:
    return np.tile(np.linspace(0, top, width), (height, 1)).astype(dtype)


@pytest.mark.parametrize("pil_mode, array, levels", [
    ("F", ramp(1.0, np.float32), 1.0),        # fractions: PIL's convert made them black (0 or 1)
    ("F", ramp(255.0, np.float32), 255),      # 8-bit levels stored as float
    ("I", ramp(65535, np.int32), 65535),      # 16-bit levels in an int32: PIL's convert made them white
    ("I", ramp(200, np.int32), 255),          # 8-bit levels in an int32
    ("I;16", ramp(65535, np.uint16), 65535),  # a 16-bit TIFF
])
def test_float_and_integer_tiffs_are_scaled_not_clipped(tmp_path, pil_mode, array, levels):
    Image.fromarray(array).save(tmp_path / "scan.tif")
    with Image.open(tmp_path / "scan.tif") as check:
        assert check.mode == pil_mode
    image = decode._decode_other((tmp_path / "scan.tif").read_bytes())
    expected = torch.from_numpy(np.round(array.astype(np.float64) * 255 / levels)).to(torch.uint8)
    assert image.shape == (3, *array.shape) and image.dtype == torch.uint8
    assert all(torch.equal(channel, expected) for channel in image)
    assert image[0, 0, 0] == 0 and image[0, 0, -1] == round(255 * float(array.max()) / levels)


def test_float_images_whose_brightness_cannot_be_known_are_skipped_with_the_reason(tmp_path, isolated_cache):
    folder = tmp_path / "train"
    for name, array in (("fine.tif", ramp(1.0, np.float32)), ("negative.tif", ramp(1.0, np.float32) - 0.5),
                        ("huge.tif", ramp(1e6, np.float32)), ("nan.tif", np.full((6, 64), np.nan, np.float32))):
        (folder / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(folder / "a" / name)
    (folder / "b").mkdir()
    Image.fromarray(ramp(65535, np.int32)).save(folder / "b" / "deep.tif")
    loaded = data.load_folder(folder, 16, progress=False)
    assert sorted(Path(f).name for f in loaded.files) == ["deep.tif", "fine.tif"]
    reasons = {Path(path).name: reason for path, reason in loaded.skipped}
    assert "from -0.5 to 0.5 fit none of the ranges" in reasons["negative.tif"]
    assert "from 0 to 1e+06" in reasons["huge.tif"] and "NaN or infinite" in reasons["nan.tif"]


# --------------------------------------------------------------------------------------------
# One photo at full resolution, for figures
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, mode", [("photo.jpg", "RGB"), ("gray.jpg", "L"), ("cmyk.jpg", "CMYK"),
                                        ("alpha.png", "RGBA")])
def test_read_rgb_is_the_whole_photo_with_pils_pixels(tmp_path, monkeypatch, name, mode):
    path = tmp_path / name
    if name.endswith(".jpg"):
        photo_like(path, 333, 517, mode=mode)  # large enough that the cache would decode it at 1/8 for 32 px
    else:
        Image.new(mode, (50, 30), (10, 200, 30, 90)).save(path)
    read = []
    real_read = decode._read_file
    monkeypatch.setattr(decode, "_read_file", lambda file: read.append(file) or real_read(file))
    with Image.open(path) as photo:
        expected = torch.from_numpy(np.array(photo.convert("RGB"))).permute(2, 0, 1)
    image = decode.read_rgb(str(path))
    assert read == [path]  # the cache's reader
    assert image.dtype == torch.uint8 and torch.equal(image, expected)


def test_read_rgb_refuses_what_the_cache_skips_and_names_the_file(tmp_path, monkeypatch):
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(decode.BadImage, match=r"empty\.jpg: empty file"):
        decode.read_rgb(tmp_path / "empty.jpg")
    photo_like(tmp_path / "huge.jpg", 200, 150)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)  # 200x150 is over it
    with pytest.raises(decode.BadImage, match=r"huge\.jpg: not decoded: 200x150"):
        decode.read_rgb(tmp_path / "huge.jpg")


def test_an_image_that_would_grow_past_the_limit_when_resized_is_skipped_before_the_resize(tmp_path, isolated_cache):
    """A 2x12000 PNG (a few hundred bytes) passed the pixel limit and resized to 224x1,344,000 on Part B's path."""
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (2, 12000)).save(tmp_path / "train" / "a" / "long.png")
    photo_like(tmp_path / "train" / "a" / "fine.jpg", 120, 90)
    loaded = data.load_folder(tmp_path / "train", 224, resize_to=256, progress=False)
    assert loaded.files == ["a/fine.jpg"] and len(loaded.skipped) == 1
    name, reason = loaded.skipped[0]
    assert name.endswith("long.png") and "not resized: its shorter side at 256 px makes 256x1,536,000" in reason


# --------------------------------------------------------------------------------------------
# Torch's threads during the build
# --------------------------------------------------------------------------------------------
@pytest.fixture
def three_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    yield
    torch.set_num_threads(before)


def test_each_decoding_thread_runs_torch_single_threaded_and_the_count_comes_back(
        tmp_path, monkeypatch, isolated_cache, three_torch_threads):
    for i in range(6):
        photo_like(tmp_path / "train" / f"c{i % 2}" / f"{i}.jpg", 120, 90, seed=i)
    seen = []
    real_read = decode._read_file
    monkeypatch.setattr(decode, "_read_file", lambda path: seen.append(torch.get_num_threads()) or real_read(path))
    data.load_folder(tmp_path / "train", 32, progress=False, decoder="cpu")
    assert seen == [1] * 6  # 6 workers x 3 intra-op threads each would oversubscribe the CPU
    assert torch.get_num_threads() == 3


def test_torch_threads_come_back_after_an_error(tmp_path, monkeypatch, isolated_cache, three_torch_threads):
    photo_like(tmp_path / "train" / "a" / "0.jpg", 120, 90)
    photo_like(tmp_path / "train" / "b" / "0.jpg", 120, 90)

    def broken(path):
        raise KeyError("a bug in the decoder")

    monkeypatch.setattr(decode, "_read_file", broken)
    with pytest.raises(KeyError):
        data.load_folder(tmp_path / "train", 32, progress=False, decoder="cpu")
    assert torch.get_num_threads() == 3


# --------------------------------------------------------------------------------------------
# The decoder choice
# --------------------------------------------------------------------------------------------
def test_an_unknown_decoder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="'auto', 'cpu' or 'cuda'"):
        data.load_folder(tmp_path / "train", 32, decoder="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: tests/test_gpu.py covers decoder='cuda'")
def test_cuda_decoder_without_cuda_is_a_user_error_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "scan_folder", lambda *args: pytest.fail("scanned before the decoder was checked"))
    with pytest.raises(UserError, match="decoder='cuda' needs a CUDA GPU"):
        data.load_folder(tmp_path / "train", 32, decoder="cuda")


def test_the_cuda_decoders_batching_and_fallbacks_match_the_cpu_decoder(tmp_path, monkeypatch):
    """The CUDA decoder's bookkeeping (batches, order, CPU fallbacks, skip reasons), with nvJPEG played by
    torchvision's CPU decoder, which, like nvJPEG, fails a whole batch for one bad file. The real GPU
    run is tests/test_gpu.py's."""
    import torchvision.io

    folder = tmp_path / "train"
    files = [photo_like(folder / "a" / f"colour{i}.jpg", 60, 40, seed=i) for i in range(4)]
    files.append(photo_like(folder / "a" / "gray.jpg", 60, 40, mode="L"))
    files.append(photo_like(folder / "a" / "cmyk.jpg", 60, 40, mode="CMYK"))
    Image.new("RGB", (50, 30), "red").save(folder / "a" / "plain.png")
    files.append(folder / "a" / "plain.png")
    truncated = files[0].read_bytes()
    (folder / "b").mkdir()
    for name, payload in (("truncated.jpg", truncated[: len(truncated) // 2]), ("empty.jpg", b"")):
        (folder / "b" / name).write_bytes(payload)
        files.append(folder / "b" / name)
    files.append(photo_like(folder / "b" / "huge.jpg", 200, 150))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20000)  # 200x150 is over it

    cpu_decode_jpeg, batches = torchvision.io.decode_jpeg, []

    def nvjpeg_stand_in(encoded, mode, device):
        assert device == "cuda" and isinstance(encoded, list)
        batches.append(len(encoded))
        return [cpu_decode_jpeg(e, mode=mode) for e in encoded]

    monkeypatch.setattr(torchvision.io, "decode_jpeg", nvjpeg_stand_in)
    with ThreadPoolExecutor(2) as pool:
        on_cuda = list(decode._decode_cuda(files, 32, None, pool, batch_size=4))
        on_cpu = list(pool.map(decode._decode, ((f, 32, None) for f in files)))
    assert batches == [4, 1]  # colour JPEGs only; the second batch (the truncated one alone) failed: CPU
    assert [reason for _, reason in on_cuda] == [reason for _, reason in on_cpu]
    assert [reason is None for _, reason in on_cuda] == [True] * 7 + [False] * 3
    for (gpu_image, _), (cpu_image, _) in zip(on_cuda[:7], on_cpu[:7]):
        assert torch.equal(gpu_image, cpu_image)  # small images: decoded whole on both paths


# --------------------------------------------------------------------------------------------
# By hand: python tests/test_decode.py
# --------------------------------------------------------------------------------------------
def _best_rates(functions: dict, files: list[Path], workers: int, repeats: int = 3) -> dict:
    """images/s of each (function(path), context) over `files` on `workers` fresh threads: the best of
    `repeats` rounds, the functions taking turns within a round, so that a busy spell on a shared machine
    hits them all. The context is entered before the threads start: torch reads its thread count then."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, (function, context) in functions.items():
            with context(), ThreadPoolExecutor(workers) as pool:
                start = time.perf_counter()
                list(pool.map(function, files))
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(files) / seconds for name, seconds in best.items()}


def _build(folder: Path, size: int) -> data.ImageSet:
    """A fresh cache build by `data.load_folder` (decoder="cpu"), in a temporary cache folder."""
    with tempfile.TemporaryDirectory() as cache_dir:
        data._MEMO.clear()
        return data.load_folder(folder, size, cache_dir=cache_dir, progress=False, decoder="cpu")


def _build_rates(folder: Path, size: int, contexts: dict, repeats: int = 3) -> dict:
    """images/s of whole cache builds under each context: the best of `repeats` rounds, taking turns."""
    best = dict.fromkeys(contexts, float("inf"))
    for _ in range(repeats):
        for name, context in contexts.items():
            with context():
                start = time.perf_counter()
                built = _build(folder, size)
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: len(built) / seconds for name, seconds in best.items()}


def measure(per_class: int = 75) -> None:
    """Side by side on ~800x600 JPEGs, on all cores: a plain PIL open+convert+resize, cache version 1's
    decode+resize (torchvision, torch's default threads, as it ran), today's decode+resize alone, and
    today's whole cache build (scan, decode, save) with and without simplejpeg (PIL's draft() instead);
    then pixel differences against version 1."""
    import os

    from benchmarks import bench

    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        root = bench.make_synthetic(Path(tmp) / "synthetic", classes=4, per_class=per_class)
        files = sorted((root / "train").glob("*/*.jpg"))
        print(f"{len(files)} synthetic 800x600 JPEGs, {workers} CPU cores and threads, torch {torch.__version__}, "
              f"best of 3 (img/s)")
        for size in (224, 64):
            as_it_is = contextlib.nullcontext
            rates = _best_rates({
                "plain PIL": (lambda p: np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR)),
                              as_it_is),
                "version 1": (lambda p: full_size_decode(p, size), as_it_is),
                "today": (lambda p: decode._decode((p, size, None)), decode.one_torch_thread)}, files, workers)
            rates.update(_build_rates(root / "train", size, {"cache build": as_it_is,
                                                             "build without simplejpeg": without_simplejpeg}))
            plain = rates["plain PIL"]
            print(f"{size:>4} px: " + " | ".join(f"{name} {rate:5.0f} ({rate / plain:.2f}x)" for name, rate in rates.items()))
        demo = sources.make_demo_dataset(Path(tmp) / "demo")
        for label, folder, sizes in (("synthetic", root / "train", (224, 64)), ("demo set", demo / "train", (64, 32))):
            for size in sizes:
                built = _build(folder, size)
                with without_simplejpeg():
                    built_by_pil = _build(folder, size)
                version_1 = torch.stack([full_size_decode(folder / name, size) for name in built.files])
                mean, largest = mean_and_max_difference(built.images, version_1)
                print(f"{label} ({len(built)} JPEGs) at {size} px, pixels (of 255) vs version 1: "
                      f"mean |diff| {mean:.3f}, max {largest}; vs without simplejpeg: max "
                      f"{mean_and_max_difference(built.images, built_by_pil.images)[1]}")


if __name__ == "__main__":
    measure()
