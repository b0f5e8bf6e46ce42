"""runtime: the settings, and the rule that no output path replaces another output or an input."""
import pytest

from shared import runtime


def test_distinct_paths_pass(tmp_path):
    runtime.check_distinct_paths({"--json": tmp_path / "a.json", "--checkpoint": tmp_path / "b.pt", "--x": None},
                                 {"the runs table": tmp_path / "runs.json", "--y": None})


@pytest.mark.parametrize("inputs", [{}, {"the runs table": "runs.json"}])
def test_output_that_is_another_output_or_an_input_is_refused(tmp_path, monkeypatch, inputs):
    monkeypatch.chdir(tmp_path)
    outputs = {"--checkpoint": "runs.json" if inputs else "same.pt", "--json": "./same.pt" if not inputs else None}
    with pytest.raises(runtime.UserError, match="would replace that file"):
        runtime.check_distinct_paths(outputs, inputs)
