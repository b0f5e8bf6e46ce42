"""runtime: the settings, and the rule that no output path replaces another output or an input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared import runtime

REPO = Path(__file__).resolve().parent.parent


def test_distinct_paths_pass(tmp_path):
    runtime.check_distinct_paths({"--json": tmp_path / "a.json", "--checkpoint": tmp_path / "b.pt", "--x": None},
                                 {"the runs table": tmp_path / "runs.json", "--y": None})


@pytest.mark.parametrize("inputs", [{}, {"the runs table": "runs.json"}])
def test_output_that_is_another_output_or_an_input_is_refused(tmp_path, monkeypatch, inputs):
    monkeypatch.chdir(tmp_path)
    outputs = {"--checkpoint": "runs.json" if inputs else "same.pt", "--json": "./same.pt" if not inputs else None}
    with pytest.raises(runtime.UserError, match="would replace that file"):
        runtime.check_distinct_paths(outputs, inputs)


# --------------------------------------------------------------------------------------------
# Settings: read at import, so each case runs in a fresh process
# --------------------------------------------------------------------------------------------
def runtime_in_child(cwd=REPO, settings: dict | str | None = None, tmp_path=None, **env):
    """runtime's view of the settings in a fresh process started in `cwd` (they are read at import)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("INAT_", "COLAB_", "KAGGLE_"))}
    environment["PYTHONPATH"] = str(REPO)
    if settings is not None:
        path = tmp_path / "inat_settings.json"
        path.write_text(settings if isinstance(settings, str) else json.dumps(settings))
        environment["INAT_SETTINGS"] = str(path)
    environment.update(env)
    code = ("from shared import runtime; import os; "
            "print(runtime.OUTPUT_DIR, runtime.cache_dir(), os.environ.get('INAT_DATA'), runtime.DATA_DIR, sep='|')")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=environment, capture_output=True, text=True)


def refusal(done) -> str:
    """The one `error:` line a bad setting gives at import."""
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_one_settings_file_sets_data_outputs_and_cache_for_every_notebook(tmp_path):
    done = runtime_in_child(settings={"data": str(tmp_path / "inat"), "outputs": str(tmp_path / "drive/out"),
                                      "cache": str(tmp_path / "cache")}, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split("|")[:3] == [str(tmp_path / "drive/out"), str(tmp_path / "cache"),
                                                  str(tmp_path / "inat")]
    # An environment variable still wins over the file.
    done = runtime_in_child(settings={"outputs": str(tmp_path / "file")}, tmp_path=tmp_path,
                            INAT_OUTPUTS=str(tmp_path / "env"))
    assert done.stdout.split("|")[0] == str(tmp_path / "env")


def test_relative_paths_in_the_settings_file_are_relative_to_the_repo_from_any_folder(tmp_path):
    settings = {"outputs": "outputs/rel-test", "data_dir": "../elsewhere", "data": None}
    seen = {cwd.name: runtime_in_child(cwd, settings, tmp_path) for cwd in (REPO, REPO / "Part-A", tmp_path)}
    assert all(done.returncode == 0 for done in seen.values()), [d.stderr for d in seen.values()]
    views = {done.stdout for done in seen.values()}
    assert len(views) == 1, seen  # the notebooks (in Part-A/) and the CLI (at the root) agree
    outputs, cache, data, data_dir = views.pop().strip().split("|")
    assert outputs == str(REPO / "outputs" / "rel-test") and data == "None"
    assert data_dir == str(REPO.parent / "elsewhere") and cache == str(REPO.parent / "elsewhere" / "cache")


@pytest.mark.parametrize("text, expected", [
    ('["data", "/x"]', "holds a list, not an object of settings"),
    ('"/path/to/data"', "holds a string, not an object of settings"),
    ("{not json", "is not readable JSON"),
    ('{"output": "x"}', "unknown setting(s) output"),
    ('{"outputs": true}', '"outputs" must be a folder path in quotes (or null), got true'),
    ('{"data": 0}', '"data" must be a folder path in quotes (or null), got 0'),
    ('{"cache": ""}', '"cache" must be a folder path'),
    ('{"data_dir": ["a"]}', '"data_dir" must be a folder path'),
])
def test_a_bad_settings_file_is_one_clear_line(tmp_path, text, expected):
    assert expected in refusal(runtime_in_child(settings=text, tmp_path=tmp_path))


def test_a_settings_file_that_is_missing_or_a_folder_is_one_line(tmp_path):
    """INAT_SETTINGS naming nothing used to be ignored: every result went to the default folders instead."""
    assert "is not there" in refusal(runtime_in_child(INAT_SETTINGS=str(tmp_path / "nope.json")))
    assert "is a folder" in refusal(runtime_in_child(INAT_SETTINGS=str(tmp_path)))


def test_outputs_on_a_file_or_under_one_is_one_line(tmp_path):
    a_file = tmp_path / "results.json"
    a_file.write_text("{}")
    assert "is a file, not a folder" in refusal(runtime_in_child(settings={"outputs": str(a_file)}, tmp_path=tmp_path))
    assert f"lies under {a_file}, which is a file" in refusal(runtime_in_child(INAT_OUTPUTS=str(a_file / "out")))


def test_outputs_that_cannot_be_written_is_one_line_and_nothing_is_made(tmp_path):
    if os.geteuid() == 0:  # root writes through permission bits; sysfs refuses new files even to root
        locked, outputs = Path("/sys"), "/sys/da6401-outputs"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        outputs = str(locked / "outputs")
    line = refusal(runtime_in_child(INAT_OUTPUTS=outputs))
    assert f"cannot be made in {locked}" in line and "INAT_OUTPUTS" in line
    assert not Path(outputs).exists()


def test_on_colab_with_drive_mounted_data_and_cache_default_to_drive(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime, "COLAB_DRIVE", tmp_path / "MyDrive")
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101")
    monkeypatch.delenv("INAT_CACHE", raising=False)
    assert runtime.drive_home() is None  # Drive not mounted: the repo's folders
    assert runtime.default_folder("data_dir") == REPO / "data"
    (tmp_path / "MyDrive").mkdir()
    drive = tmp_path / "MyDrive" / "da6401-a2"
    assert [runtime.default_folder(key) for key in ("data_dir", "cache", "outputs")] == \
        [drive / "data", drive / "cache", drive / "outputs"]
    assert runtime.cache_dir() == drive / "cache"
    monkeypatch.setenv("INAT_CACHE", str(tmp_path / "mine"))  # a setting still wins
    assert runtime.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("COLAB_RELEASE_TAG")  # not on Colab: a mounted-looking folder changes nothing
    assert runtime.default_folder("cache") == runtime.DATA_DIR / "cache"


@pytest.mark.parametrize("seed", [2**32, -1, 1.5, True])
def test_a_seed_numpy_cannot_take_is_one_line(seed):
    with pytest.raises(runtime.UserError, match="seed must be a whole number from 0 to 4294967295"):
        runtime.seed_everything(seed)


def test_seeds_at_the_ends_of_the_range_work():
    runtime.seed_everything(0)
    runtime.seed_everything(runtime.MAX_SEED)
