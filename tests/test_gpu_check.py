"""`python -m benchmarks.gpu_check` and its stages (`benchmarks/gpu_stages.py`): its budget, its one-line
errors, its parts, and the whole check in miniature.

The GPU stages themselves need a GPU; here `--tiny` runs every stage on the CPU, so a lent GPU's few
minutes are never spent finding a bug that a CPU could have found.
"""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from benchmarks import gpu_check, gpu_stages
from shared import data
from shared.model import CNNConfig
from shared.runtime import REPO_ROOT, UserError
from shared.train import TrainConfig

FAKE_REFERENCE = '''
CONFIGS = {"light": (32,) * 5, "heavy": (512, 256, 128, 64, 32)}
CALLS = []

def images_per_second(filters, size=224, batch=256, n=3000, n_train=2400):
    CALLS.append(dict(filters=filters, size=size, batch=batch, n=n, n_train=n_train))
    return 1000.0
'''


def test_deadlines_share_the_budget_and_end_inside_it():
    deadlines = gpu_check.plan_deadlines(480)
    assert list(deadlines) == list(gpu_check.STAGES)
    assert list(deadlines.values()) == sorted(deadlines.values())  # cumulative: unused time passes on
    assert deadlines["sweep"] == pytest.approx(480 - gpu_check.JSON_RESERVE_SECONDS)
    shares = dict(zip(deadlines, [b - a for a, b in zip([0, *deadlines.values()], deadlines.values())]))
    total = sum(gpu_check.STAGE_WEIGHTS.values())
    assert all(shares[name] == pytest.approx((480 - gpu_check.JSON_RESERVE_SECONDS) * weight / total)
               for name, weight in gpu_check.STAGE_WEIGHTS.items())
    only = gpu_check.plan_deadlines(100, ["tests", "sweep"])
    assert set(only) == {"tests", "sweep"} and only["sweep"] == pytest.approx(100 - gpu_check.JSON_RESERVE_SECONDS)


@pytest.mark.parametrize("arguments, message", [
    (["--budget-seconds", "5"], "--budget-seconds must be at least"),
    (["--budget-seconds", "nan"], "--budget-seconds must be at least"),  # nan and inf used to pass the check
    (["--budget-seconds", "inf"], "--budget-seconds must be at least"),
    (["--stages", "tests,gpu"], "--stages: unknown gpu"),
    (["--reference", "no/such/reference_loop.py"], "no such file"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, arguments, message):
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--out", str(tmp_path), *arguments])
    assert stop.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error and error.count("\n") == 1
    assert not (tmp_path / gpu_check.REPORT_NAME).exists()  # refused before any work


def test_an_earlier_report_is_never_overwritten(tmp_path):
    assert gpu_check.report_path(tmp_path) == tmp_path / "gpu_check.json"
    (tmp_path / "gpu_check.json").write_text("{}")
    (tmp_path / "gpu_check-2.json").write_text("{}")
    assert gpu_check.report_path(tmp_path) == tmp_path / "gpu_check-3.json"


def test_reference_loop_is_loaded_from_its_path_and_checked(tmp_path):
    good = tmp_path / "reference_loop.py"
    good.write_text(FAKE_REFERENCE)
    reference = gpu_stages.load_reference(good)
    # The bench's data, sizes and split: 3,000 images, 600 of them (20% of each class) for validation.
    assert gpu_stages.reference_rate(reference, "heavy", gpu_stages.FULL) == 1000.0
    assert reference.CALLS == [dict(filters=(512, 256, 128, 64, 32), size=224, batch=256, n=3000, n_train=2400)]
    bad = tmp_path / "other.py"
    bad.write_text("x = 1\n")
    with pytest.raises(UserError, match="is it reference_loop.py"):
        gpu_stages.load_reference(bad)


def test_a_stage_past_its_time_is_killed_with_its_children(tmp_path):
    grandchild_pid = tmp_path / "pid"
    script = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(grandchild_pid)!r}, 'w').write(str(p.pid)); print('started', flush=True); time.sleep(60)")
    start = time.perf_counter()
    result = gpu_check.run_process([sys.executable, "-c", script], timeout=3, env=dict(os.environ))
    assert result["timed_out"] and time.perf_counter() - start < 20
    assert "started" in result["output"]
    pid = int(grandchild_pid.read_text())
    for _ in range(50):  # the killed grandchild is reaped by init shortly after
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the stage's own child {pid} outlived the kill")


def test_junit_summary_counts_outcomes_and_keeps_messages(tmp_path):
    xml = tmp_path / "junit.xml"
    xml.write_text("""<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.test_gpu" name="test_ok" time="1.5"/>
<testcase classname="tests.test_gpu" name="test_bad" time="0.2"><failure message="AssertionError: 3 &gt; 2">long
traceback</failure></testcase>
<testcase classname="tests.test_gpu" name="test_cuda" time="0.0"><skipped type="pytest.skip" message="needs CUDA: x"/></testcase>
</testsuite></testsuites>""")
    summary = gpu_check.junit_summary(xml)
    assert (summary["passed"], summary["failed"], summary["error"], summary["skipped"]) == (1, 1, 0, 1)
    bad = next(t for t in summary["tests"] if t["name"] == "test_bad")
    assert bad["outcome"] == "failed" and bad["message"] == "AssertionError: 3 > 2" and bad["seconds"] == 0.2


def test_sweep_timings_from_the_runs_table(tmp_path):
    table = tmp_path / "sweep_runs.json"
    config = {**CNNConfig(input_size=32).to_dict(), **TrainConfig(epochs=2, batch_size=64).to_dict()}
    record = lambda name, wall: {"name": name, "state": "finished", "error": None, "wall_seconds": wall,  # noqa: E731
                                 "epoch_seconds": [4.0, 3.0], "macs": 10, "images_per_second": 100.0,
                                 "config": config}
    table.write_text(json.dumps({"sweeps": {}, "runs": [record("r00", 12.0), record("r01", 8.0)]}))
    started = 1767225605.0  # 2026-01-01T00:00:05Z
    # 1,280 images: 1,024 train + 256 val per epoch at 1 ms each -> 2.56 s per 2-epoch run.
    estimate = {"seconds_per_run": 10.0, "train_folder_images": 1280,
                "speed": {"points": [{"macs": 1, "seconds_per_image": 0.001}]}}
    stage = {"started": started, "finished": started + 25, "cache_build": {"seconds": 7.0}, "estimate": estimate}
    timings = gpu_stages.sweep_timings(stage, table)
    assert timings["runs_finished"] == 2
    assert [run["wall_seconds"] for run in timings["runs"]] == [12.0, 8.0]
    assert timings["runs"][0]["train_seconds"] == 7.0 and timings["runs"][0]["estimated_seconds"] == pytest.approx(2.56)
    assert timings["mean_run_seconds"] == 12.5 and timings["extrapolated_30_runs_seconds"] == 7.0 + 30 * 12.5
    assert timings["measured_over_estimated"] == pytest.approx(25 / 5.12)
    assert timings["calibrated_estimate_30_runs_seconds"] == pytest.approx(7.0 + 30 * 10.0 * 25 / 5.12)
    assert gpu_stages.sweep_timings(stage, tmp_path / "none.json") == {"runs_finished": 0}


def test_a_test_run_cut_short_is_read_from_its_verbose_lines():
    output = ("tests/test_gpu.py::test_fp16 PASSED [ 10%]\ntests/test_gpu.py::test_compiled FAILED [ 20%]\n"
              "tests/test_gpu.py::test_one[head] PASSED [ 30%]\nsome log line\n")
    summary = gpu_check.verbose_summary(output)
    assert (summary["passed"], summary["failed"], summary["skipped"]) == (2, 1, 0) and summary["cut_short"]
    assert [t["name"] for t in summary["tests"]] == ["test_fp16", "test_compiled", "test_one[head]"]


def test_compare_decoded_reports_pixel_differences():
    images = torch.full((2, 3, 4, 4), 100, dtype=torch.uint8)
    reference = data.ImageSet(images, torch.tensor([0, 1]), ["a", "b"], ["a/0.jpg", "b/0.jpg"])
    shifted = data.ImageSet(images + 2, torch.tensor([0, 1]), ["a", "b"], ["a/0.jpg", "b/0.jpg"])
    shifted.images[0, 0, 0, 0] = 140
    difference = gpu_stages.compare_decoded(reference, shifted)
    assert difference["same_files_and_labels"] and difference["max_abs_diff"] == 40
    assert difference["mean_abs_diff"] == pytest.approx((95 * 2 + 40) / 96)
    assert difference["share_over_16_levels"] == pytest.approx(1 / 96)
    relabelled = data.ImageSet(images, torch.tensor([1, 0]), ["a", "b"], ["a/0.jpg", "b/0.jpg"])
    assert gpu_stages.compare_decoded(reference, relabelled) == {"same_files_and_labels": False}


def test_tiny_check_runs_every_stage_and_writes_one_json(tmp_path):
    """The whole check in miniature, as a user runs it. On a GPU machine the tests stage is left out here:
    it would run the GPU tests inside this one."""
    stages = "data,decode,bench,sweep" if torch.cuda.is_available() else ",".join(gpu_check.STAGES)
    out = tmp_path / "out"
    env = {**os.environ, "INAT_DATA_DIR": str(tmp_path / "data"), "INAT_OUTPUTS": str(tmp_path / "outputs")}
    start = time.perf_counter()
    process = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out), "--tiny",
                              "--stages", stages, "--budget-seconds", "400"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - start
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert [p.name for p in out.iterdir()] == [gpu_check.REPORT_NAME]  # ONE file, nothing else
    report = json.loads((out / gpu_check.REPORT_NAME).read_text())
    stage = report["stages"]
    assert report["tiny"] and report["torch"] == torch.__version__ and report["date"] and report["ok"]
    assert all(stage[name]["status"] == "done" for name in stages.split(",")), \
        {name: (s["status"], s.get("output_tail")) for name, s in stage.items()}
    assert seconds < 400 and report["elapsed_seconds"] < 400
    if "tests" in stage:  # no CUDA: every GPU test reports its skip and its reason
        assert stage["tests"]["skipped"] >= 7 and stage["tests"]["passed"] == stage["tests"]["failed"] == 0
        assert all("needs CUDA" in test["message"] for test in stage["tests"]["tests"])
    assert stage["data"]["images"] == 80
    decoders = stage["decode"]["decoders"]
    assert decoders["cpu"]["images_per_second"] > 0 and stage["decode"]["images"] == 60
    if not torch.cuda.is_available():
        assert decoders["cuda"] == {"skipped": "no CUDA"}
    light = stage["bench"]["configs"]["light"]
    assert light["engine"]["images_per_second"] > 0 and light["typical"]["images_per_second"] > 0
    assert stage["bench"]["reference"].startswith("not given")
    sweep = stage["sweep"]
    assert sweep["config"]["parameters"]["patience"] == {"value": 0}  # full epochs
    assert sweep["estimate"]["describe"].startswith("Estimated sweep time on ")
    timings = sweep["timings"]
    assert timings["runs_finished"] == 2 and all(run["wall_seconds"] >= 0 for run in timings["runs"])
    assert all(run["state"] == "finished" and run["epochs"] == 1 for run in timings["runs"])
    assert timings["extrapolated_30_runs_seconds"] > timings["mean_run_seconds"] > 0
    assert timings["calibrated_estimate_30_runs_seconds"] > 0 and timings["measured_over_estimated"] > 0
    summary = process.stdout
    assert "GPU check on" in summary and "Estimated sweep time" in summary and "wrote " in summary
    # The stages wrote into a work folder that is gone now, never into the user's outputs (their sweep results).
    assert not (tmp_path / "outputs").exists() and not list((tmp_path / "data").glob("gpu_check-*"))


def test_a_short_budget_skips_and_cuts_stages_but_still_writes_the_json(tmp_path):
    """30 s for data, tests and sweep: the data stage's share is under MIN_STAGE_SECONDS, so it is skipped,
    the tests get what is left of theirs, and the sweep, with no data, says so instead of failing."""
    out = tmp_path / "out"
    env = {**os.environ, "INAT_DATA_DIR": str(tmp_path / "data")}
    start = time.perf_counter()
    process = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(out), "--tiny",
                              "--stages", "data,tests,sweep", "--budget-seconds", "30"],
                             cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert time.perf_counter() - start < 30 + 15  # the budget, plus starting Python and torch in this process
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-2000:]
    stages = json.loads((out / gpu_check.REPORT_NAME).read_text())["stages"]
    assert stages["data"]["status"] == "skipped: budget spent"
    assert stages["tests"]["status"] in ("done", f"partial: its {stages['tests']['budget_seconds']:.0f} s were spent")
    assert stages["sweep"]["status"].startswith("skipped: no data")
