"""W&B mode selection and figure logging: real wandb, offline, no key, no network."""
import http.server
import os
import re
import threading
import time
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from shared import tracking  # noqa: E402

SHARED = Path(tracking.__file__).parent


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No key anywhere: no env vars, an empty HOME (no ~/.netrc from an earlier `wandb login`)."""
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setattr(tracking, "_VERIFIED", False)
    return tmp_path


@pytest.fixture
def server_accepts(monkeypatch):
    """The key check answers 'accepted' without a network (the machine has none)."""
    checked = []
    monkeypatch.setattr(tracking, "key_problem", lambda key, timeout=tracking.VERIFY_SECONDS: checked.append(key))
    return checked


def test_no_key_means_offline_with_a_notice(clean_env, capsys):
    assert tracking.setup_wandb() == "offline"
    assert tracking.os.environ["WANDB_MODE"] == "offline"
    assert "offline" in capsys.readouterr().out


def test_an_explicit_wandb_mode_wins(clean_env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert tracking.setup_wandb() == "disabled"


def test_an_accepted_key_means_online(clean_env, monkeypatch, server_accepts):
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    assert tracking.setup_wandb() == "online"
    assert server_accepts == ["0" * 40]


def test_an_earlier_login_means_online(clean_env, server_accepts):
    (clean_env / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "1" * 40 + "\n")
    (clean_env / ".netrc").chmod(0o600)
    assert tracking.setup_wandb() == "online"
    assert server_accepts == ["1" * 40]


@pytest.mark.parametrize("explicit", [None, "online"])
def test_a_dummy_key_without_network_goes_offline_in_seconds_with_one_line(clean_env, monkeypatch, capsys,
                                                                           explicit):
    """Issue 14: a dummy key raised AuthenticationError after 33 s (and WANDB_MODE=online hung for minutes).
    Nothing listens on port 9: the check fails at once, as it does on a machine without network."""
    if explicit:
        monkeypatch.setenv("WANDB_MODE", explicit)
    monkeypatch.setenv("WANDB_API_KEY", "dummy" * 8)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    start = time.monotonic()
    assert tracking.setup_wandb() == "offline"
    assert time.monotonic() - start < tracking.VERIFY_SECONDS + 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "unreachable" in lines[0] and "offline" in lines[0], lines
    assert tracking.setup_wandb() == "offline" and capsys.readouterr().out == ""  # decided once


class _Rejecting(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_rejected_key_goes_offline_and_a_logged_run_still_works(clean_env, monkeypatch, capsys):
    """A W&B server that answers 401, as api.wandb.ai does to a dummy key: offline, one line, and runs log."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _Rejecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("WANDB_API_KEY", "dummy" * 8)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_port}")
        assert tracking.key_problem("dummy" * 8) == "the server rejected the key (HTTP 401)"
        fig, ax = plt.subplots(figsize=(1, 1))
        assert tracking.log_figures({"dot": fig}, run_name="rejected-key", group="test") is not None
        plt.close(fig)
    finally:
        server.shutdown()
    out = capsys.readouterr().out
    assert "rejected the key" in out and tracking.os.environ["WANDB_MODE"] == "offline"
    assert list((clean_env / "wandb").glob("offline-run-*"))


class _Trickling(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(100):  # one byte a second: each read is within urllib's timeout, the whole is not
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(1)

    def log_message(self, *args):
        pass


def test_a_server_that_trickles_its_answer_is_cut_off_at_the_promised_seconds(clean_env, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickling)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_port}")
        start = time.monotonic()
        assert tracking.key_problem("0" * 40, timeout=2).endswith("did not answer within 2 s")
        assert time.monotonic() - start < 3
    finally:
        server.shutdown()


def test_wandb_init_never_hard_codes_mode():
    """mode= in wandb.init would override WANDB_MODE, the switch users and tests rely on."""
    for path in SHARED.glob("*.py"):
        for call in re.findall(r"wandb\.init\((.*?)\)", path.read_text(), flags=re.S):
            assert "mode=" not in call, path


def test_logged_figures_are_real_uint8_images_not_black(clean_env, monkeypatch):
    """wandb 0.31 saves float arrays in [0, 1] as all-black PNGs; figures go in as uint8 PIL images."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.linspace(0, 1, 100).reshape(10, 10), cmap="viridis")
    group = tracking.figures_group("quick", {"root": "/x", "files": "0123456789abcdef", "demo": True})
    assert tracking.log_figures({"ramp": fig}, run_name="test-figure", group=group) is not None
    plt.close(fig)
    # after `wandb sync` the report finds it by group and name: both are in the offline run's own file, which
    # wandb's writer process may still be flushing when finish() returns (seen: 7 bytes, its header alone)
    deadline, logged = time.monotonic() + 30, []
    while not any(b"test-figure" in f and group.encode() in f for f in logged) and time.monotonic() < deadline:
        time.sleep(0.1)
        logged = [file.read_bytes() for file in (clean_env / "wandb").rglob("offline-run-*/*.wandb")]
    assert group == "quick-0123456789abcdef" and any(b"test-figure" in f and group.encode() in f for f in logged)
    assert tracking.figures_group("quick", None) is None and tracking.figures_group(None, {"files": "ab"}) is None
    pngs = list((clean_env / "wandb").glob("offline-run-*/files/media/images/*.png"))
    assert pngs, "the figure was not written to the offline run"
    pixels = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert pixels.dtype == np.uint8 and pixels.max() > 200 and pixels.std() > 20


# --------------------------------------------------------------------------------------------
# Hand-off files across sessions: an attached input (Kaggle), then W&B artifacts
# --------------------------------------------------------------------------------------------
@pytest.fixture
def sessions(monkeypatch, tmp_path):
    """This session's empty outputs folder and an input root, as Kaggle attaches an earlier notebook's output."""
    from shared import runtime

    outputs, inputs = tmp_path / "working" / "outputs", tmp_path / "input"
    outputs.mkdir(parents=True)
    inputs.mkdir()
    monkeypatch.setattr(tracking, "OUTPUT_DIR", outputs)
    monkeypatch.setattr(runtime, "INPUTS", inputs)
    return outputs, inputs


def test_a_hand_off_is_taken_from_this_outputs_folder_else_the_newest_attached_copy(sessions, capsys):
    outputs, inputs = sessions
    assert tracking.handoff("sweep_runs.json", "quick") == outputs / "sweep_runs.json"  # nowhere: the local path
    old, new = (inputs / name / "da6401-a2" / "outputs" / "sweep_runs.json" for name in ("old", "new"))
    for path, stamp in ((old, 1_000_000), (new, 2_000_000)):
        path.parent.mkdir(parents=True)
        path.write_text("{}")
        os.utime(path, (stamp, stamp))
    assert tracking.handoff("sweep_runs.json", "quick") == new
    assert f"taken from {new}, an attached input" in capsys.readouterr().out
    (outputs / "sweep_runs.json").write_text("{}")
    assert tracking.handoff("sweep_runs.json", "quick") == outputs / "sweep_runs.json"


class StubRun:
    """What wandb.init returns, at the API boundary: it keeps the artifacts logged to it."""
    logged = {}

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def log_artifact(self, artifact, aliases=()):
        for alias in aliases:
            StubRun.logged[f"{artifact.name}:{alias}"] = artifact

    def finish(self, exit_code=0):
        pass


class StubApi:
    """wandb.Api: `artifact(address).download(root)` writes the logged artifact's files under root."""

    def artifact(self, address):
        import wandb

        name = address.rsplit("/", 1)[-1]
        if name not in StubRun.logged:
            raise wandb.errors.CommError(f"artifact {address} not found")
        entries = StubRun.logged[name].manifest.entries

        class Downloaded:
            def download(self, root):
                for path, entry in entries.items():
                    (Path(root) / path).parent.mkdir(parents=True, exist_ok=True)
                    (Path(root) / path).write_bytes(Path(entry.local_path).read_bytes())
                return root
        return Downloaded()


def test_with_a_key_hand_offs_are_logged_as_artifacts_and_fetched_by_a_session_without_them(
        clean_env, server_accepts, sessions, monkeypatch, capsys):
    import wandb

    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setattr(wandb, "init", StubRun)
    monkeypatch.setattr(wandb, "Api", StubApi)
    monkeypatch.setattr(StubRun, "logged", {})
    outputs, _ = sessions
    table, weights = outputs / "sweep_runs.json", outputs / "sweep_checkpoints" / "local-1.pt"
    weights.parent.mkdir()
    table.write_text('{"runs": []}')
    weights.write_bytes(b"weights")
    tracking.log_handoff("quick", table, weights, outputs / "never-written.json")
    assert sorted(StubRun.logged) == ["sweep_checkpoints-local-1.pt:latest", "sweep_checkpoints-local-1.pt:quick",
                                      "sweep_runs.json:latest", "sweep_runs.json:quick"]

    later = outputs.parent / "a-new-session"  # a lost Colab session, or a Kaggle one with nothing attached
    monkeypatch.setattr(tracking, "OUTPUT_DIR", later)
    fetched = tracking.handoff("sweep_runs.json", "quick")
    assert fetched.read_text() == '{"runs": []}' and fetched.is_relative_to(later)
    assert "W&B artifact sweep_runs.json:quick" in capsys.readouterr().out
    # The checkpoint lands beside the fetched table, where sweep.best_run_checkpoint looks for it.
    assert tracking.handoff("sweep_checkpoints/local-1.pt", "quick") == fetched.parent / "sweep_checkpoints" / "local-1.pt"
    assert tracking.handoff("sweep_runs.json", "full") == later / "sweep_runs.json"  # another mode's: none
    assert "no artifact" in capsys.readouterr().out
