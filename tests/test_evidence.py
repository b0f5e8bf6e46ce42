"""shared.evidence: claims only when the evidence clears the thresholds, and the refusals say why."""
import math

import numpy as np
import pytest

from shared import evidence


def test_units_are_spelled_one_way():
    # Part-B/02 printed "5,130 (0.0x the scratch CNN's ...)" and "(-24.50% points)".
    assert evidence.ratio(5_130 / 4_260_000) == "0.0012x (1/830)"
    assert evidence.ratio(1.4923) == "1.49x" and evidence.ratio(0.35) == "0.35x" and evidence.ratio(24.5) == "24x"
    assert evidence.pp(-0.245) == "-24.5 pp" and evidence.pp(0.0123) == "+1.2 pp"


def test_binomial_interval_of_2000_images():
    low, high = evidence.binomial_interval(0.5, 2000)
    assert low < 0.5 < high
    # Wilson's interval is close to the normal one at p = 0.5: 1.96 * sqrt(0.25 / 2000) = 2.19 pp.
    assert (high - low) / 2 == pytest.approx(1.96 * math.sqrt(0.25 / 2000), rel=1e-3)
    assert evidence.binomial_interval(1.0, 50)[1] == 1.0 and evidence.binomial_interval(0.0, 50)[0] == 0.0


def test_a_clear_difference_is_claimed_with_its_evidence():
    finding = evidence.compare({"True": [0.50, 0.52, 0.49, 0.51, 0.50], "False": [0.40, 0.41, 0.39, 0.42, 0.40]},
                               "batch_norm")
    assert finding.supported and finding.reason is None
    assert finding.difference == pytest.approx(0.10, abs=1e-9)
    assert finding.cohens_d > evidence.MIN_COHENS_D and finding.p_value <= evidence.MAX_P_VALUE
    assert finding.text.startswith("batch_norm: True beats False by +10.0 pp")
    assert "n=5" in finding.text and "d = " in finding.text and "permutation p = " in finding.text


def test_overlapping_spreads_are_not_claimed():
    finding = evidence.compare({"0.2": [0.45, 0.52, 0.40, 0.47], "0.3": [0.44, 0.50, 0.41, 0.49]}, "dropout")
    assert not finding.supported and finding.reason == "spreads overlap"
    assert finding.text.startswith("The runs do not support a conclusion about dropout: spreads overlap")
    assert "beats" not in finding.text


def test_too_few_runs_refuse_and_say_how_many():
    finding = evidence.compare({"relu": [0.9, 0.91], "gelu": [0.5, 0.52, 0.51]}, "activation")
    assert not finding.supported and finding.reason == "too few runs"
    assert "too few runs (relu n=2, gelu n=3" in finding.text and "beats" not in finding.text


def test_three_against_three_can_be_chance():
    """Perfectly separated 3 vs 3: one in 10 shufflings separates them as well, so p = 0.1 > 0.05."""
    finding = evidence.compare({"a": [0.50, 0.52, 0.51], "b": [0.44, 0.43, 0.45]}, "dropout")
    assert finding.cohens_d > evidence.MIN_COHENS_D
    assert finding.p_value == pytest.approx(0.1, abs=0.01)
    assert not finding.supported and finding.reason == "could be chance"


def test_small_groups_are_left_out_but_named():
    finding = evidence.compare({"x": [0.6, 0.61, 0.62, 0.6], "y": [0.4, 0.41, 0.42, 0.4], "z": [0.9]}, "kernel_size")
    assert finding.supported and "x beats y" in finding.text
    assert "Left out (fewer than 3 finished runs): z: 90.0% (n=1)." in finding.text


def test_alignment_and_association():
    assert evidence.aligned([True, False, True, False], [0.0, 0.05, 0.0, 0.05])
    assert not evidence.aligned([True, False, True, False], [0.0, 0.05, 0.05, 0.0])
    assert not evidence.aligned([1, 1, 1], [2, 2, 2])  # constant columns explain nothing
    pairs = evidence.confounded_pairs({"augment": [True, False, True], "weight_decay": [0, 1, 0], "lr": [1, 2, 3]})
    assert pairs == [("augment", "weight_decay")]


def test_groups_without_spread_claim_nothing():
    """Identical runs gave 'd = inf' and a claim of '+0.0 pp': no finite d, no claim."""
    finding = evidence.compare({"True": [0.5] * 3, "False": [0.5] * 3}, "batch_norm")
    assert not finding.supported and finding.reason == "no spread"
    apart = evidence.compare({"True": [0.6] * 3, "False": [0.5] * 3}, "batch_norm")
    assert not apart.supported and apart.reason == "no spread"
    assert "inf" not in finding.text + apart.text and "nan" not in (finding.text + apart.text).lower()


def test_infinite_and_nan_accuracies_never_enter_a_statement():
    finding = evidence.compare({"a": [0.5, 0.51, 0.49, math.inf], "b": [0.4, 0.41, 0.39, math.nan]}, "dropout")
    assert "inf" not in finding.text and "nan" not in finding.text.lower()
    assert "+1 not finite, left out" in finding.text and [g.n for g in finding.groups] == [3, 3]


def test_a_claim_needs_a_difference_that_matters():
    """0.05 pp apart with almost no spread is 'significant' but smaller than one image in 1,000."""
    tiny = {"a": [0.5000, 0.50001, 0.49999, 0.5], "b": [0.5005, 0.50051, 0.50049, 0.5005]}
    finding = evidence.compare(tiny, "dropout")
    assert not finding.supported and finding.reason == "below the floor"
    assert "+0.1 pp a difference must reach" in finding.text and "image count is unknown" in finding.text
    clear = {"a": [0.50, 0.505, 0.495, 0.5], "b": [0.52, 0.525, 0.515, 0.52]}  # 2 pp, one image is 5 pp
    assert evidence.compare(clear, "dropout").supported
    assert evidence.compare(clear, "dropout", images=20).reason == "below the floor"
    assert evidence.difference_floor(2000) == pytest.approx(0.0005)


def test_large_groups_are_compared_in_bounded_memory():
    """20,000 runs x 2,000 shufflings used to be held at once (320 MB; 1.6 GB at the default 10,000)."""
    import tracemalloc

    rng = np.random.default_rng(0)
    groups = [evidence.Group(label, (0.5 + rng.normal(0, 0.03, 10_000)).tolist()) for label in "ab"]
    tracemalloc.start()
    p = evidence.permutation_p_value(groups, permutations=2_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 0 < p <= 1 and peak < 100 * 2**20


def test_test_vs_validation_reports_the_test_accuracy_and_its_interval():
    within = evidence.test_vs_validation(0.43, 0.44, 2000, 2000)
    assert not within.supported and within.reason == "within noise"
    assert "Report the TEST accuracy, 43.00%" in within.text and "2,000 test images" in within.text
    low, high = evidence.binomial_interval(0.43, 2000)
    assert f"±{100 * (high - low) / 2:.1f} pp" in within.text
    beyond = evidence.test_vs_validation(0.40, 0.48, 2000, 2000)
    assert beyond.supported and "8.0 pp above test" in beyond.text and "inflated" in beyond.text


@pytest.mark.parametrize("test_acc, val_acc", [(math.nan, 0.9), (0.9, math.inf), (math.inf, math.nan), (None, 0.5)])
def test_test_vs_validation_refuses_accuracies_that_are_not_numbers(test_acc, val_acc):
    """test_vs_validation(nan, ...) used to state 'Report the TEST accuracy, nan%' as a supported claim."""
    finding = evidence.test_vs_validation(test_acc, val_acc, 2000, 2000)
    assert not finding.supported and finding.reason == "not finite"
    assert "nan" not in finding.text.lower().replace("not a number", "") and "inf%" not in finding.text
    assert "Report the TEST accuracy" not in finding.text


def test_strategy_ratios_are_computed_not_assumed():
    rows = {"head": dict(val_acc=0.50, epoch_seconds=1.0, train_seconds=1.0, trainable_params=5_130,
                         total_params=11_181_642),
            "last_k (k=1)": dict(val_acc=0.56, epoch_seconds=3.0, train_seconds=6.0, trainable_params=8_000_000,
                                 total_params=11_181_642),
            "first_k (k=2)": dict(val_acc=0.57, epoch_seconds=1.5, train_seconds=3.0, trainable_params=10_000_000,
                                  total_params=11_181_642),
            "full": dict(val_acc=0.58, epoch_seconds=2.0, train_seconds=4.0, trainable_params=11_181_642,
                         total_params=11_181_642)}
    findings = {f.subject: f for f in evidence.strategy_comparison(rows, "full", val_images=2000)}
    # last_k is SLOWER per epoch than full here: the sentence says so instead of assuming the usual order.
    assert "last_k (k=1): its epoch time is 1.50x full's epoch time" in findings["last_k (k=1) cost"].text
    assert "0.75x full's epoch time" in findings["first_k (k=2) cost"].text
    assert "0.00046x (1/2,180) full's" in findings["head cost"].text
    assert findings["head accuracy"].supported and "-8.0 pp" in findings["head accuracy"].text
    near = findings["first_k (k=2) accuracy"]
    assert not near.supported and "no ranking" in near.text
    assert "full accuracy" not in findings  # the best strategy is the reference of the ranking


def _history(train_acc, val_acc, train_loss, val_loss):
    return [dict(epoch=i + 1, train_acc=a, val_acc=b, train_loss=c, val_loss=d)
            for i, (a, b, c, d) in enumerate(zip(train_acc, val_acc, train_loss, val_loss))]


def test_overfitting_is_judged_only_from_enough_curve():
    overfit = _history([0.5, 0.7, 0.85, 0.95], [0.45, 0.55, 0.58, 0.57], [1.5, 1.0, 0.6, 0.3], [1.6, 1.3, 1.25, 1.4])
    finding = evidence.overfitting(overfit, "the scratch CNN")
    assert finding.supported and finding.text.startswith("the scratch CNN overfits")
    clean = _history([0.5, 0.6, 0.65], [0.55, 0.62, 0.66], [1.5, 1.2, 1.0], [1.4, 1.1, 0.95])
    assert "no sign of overfitting" in evidence.overfitting(clean).text
    short = evidence.overfitting(overfit[:2])
    assert not short.supported and short.reason == "too few epochs"
    head = [{"step": 50, "train_loss": 1.0, "val_acc": 0.6}]  # head-only training records steps
    assert evidence.overfitting(head).reason == "too few epochs"


def test_scratch_vs_finetuned_formats_small_ratios():
    scratch = dict(test_acc=0.40, params=4_260_000, seconds_to_best=300.0)
    tuned = dict(test_acc=0.855, trainable_params=5_130, total_params=11_181_642, seconds_to_best=30.0)
    findings = evidence.scratch_vs_finetuned(scratch, tuned, test_images=2000)
    text = "\n".join(f.text for f in findings)
    assert "+45.5 pp, beyond the" in text
    assert "trains 5,130 parameters, 0.0012x (1/830) the scratch CNN's 4,260,000" in text
    assert "0.0x" not in text and "% points" not in text
    assert "0.10x the 300.0 s" in text
    assert [f.reason for f in findings[-2:]] == ["too few epochs", "too few epochs"]  # no curves given


def test_part_b_findings_name_the_scratch_model_and_say_what_is_missing():
    """Issue 21: the head strategy's Linear steps read as "0 epoch(s) with train and validation curves", and a
    scratch model without per-epoch times silently lost the time comparison."""
    scratch = dict(name="the sweep's best run r03, as saved", test_acc=0.97, params=4_000, seconds_to_best=6.9,
                   history=[])
    tuned = dict(test_acc=0.9, trainable_params=5_130, total_params=11_181_642, seconds_to_best=8.3,
                 history=[{"step": 50, "train_loss": 1.0, "val_acc": 0.6}])
    text = "\n".join(f.text for f in evidence.scratch_vs_finetuned(scratch, tuned, test_images=2000))
    assert "8.3 s, 1.20x the 6.9 s of the scratch CNN (the sweep's best run r03, as saved)" in text
    assert "the fine-tuned model: it has no per-epoch train and validation curves" in text and "0 epoch" not in text
    untimed = evidence.scratch_vs_finetuned({**scratch, "seconds_to_best": None}, tuned, test_images=2000)
    assert "No time comparison: the scratch CNN (the sweep's best run r03, as saved) has no per-epoch times" in \
        "\n".join(map(str, untimed))
