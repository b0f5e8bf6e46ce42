"""shared.effects: the joint model's tests are calibrated, find planted effects, and refuse what they cannot separate."""
import math

import numpy as np
import pytest

from shared import effects, evidence


def _design(rng, runs, levels):
    return {name: [f"v{int(i)}" for i in rng.integers(count, size=runs)] for name, count in levels.items()}


def test_permutation_p_values_match_the_f_distribution_when_the_noise_is_normal():
    """Freedman-Lane's p-value agrees with the F test's where the F test's assumptions hold."""
    rng = np.random.default_rng(3)
    labels = _design(rng, 40, {"a": 2, "b": 3})
    a, b = effects.categorical_term("a", labels["a"]), effects.categorical_term("b", labels["b"])
    accuracy = 0.5 + 0.02 * a.columns[:, 0] + rng.normal(0, 0.03, 40)
    base = np.ones((40, 1))
    tests = effects.addition_tests(accuracy, base, {"a": a.columns, "b": b.columns}, permutations=4000)
    for name in ("a", "b"):
        exact = effects.stats.f.sf(tests[name].f, tests[name].columns, tests[name].residual)
        assert tests[name].p_value == pytest.approx(exact, abs=0.02)
    assert tests["b"].columns == 2 and tests["a"].residual == 38


def test_many_runs_use_the_f_distribution_and_bounded_memory():
    rng = np.random.default_rng(0)
    labels = _design(rng, 5_000, {"a": 2})
    term = effects.categorical_term("a", labels["a"])
    accuracy = 0.5 + rng.normal(0, 0.03, 5_000)
    test = effects.addition_tests(accuracy, np.ones((5_000, 1)), {"a": term.columns})["a"]
    assert test.residual >= effects.LARGE_SAMPLE
    assert test.p_value == pytest.approx(effects.stats.f.sf(test.f, 1, test.residual))


def test_planted_effects_enter_and_a_null_parameter_does_not():
    rng = np.random.default_rng(1)
    labels = _design(rng, 30, {"big": 2, "moderate": 2, "none": 3})
    terms = {name: effects.categorical_term(name, values) for name, values in labels.items()}
    accuracy = (0.5 + 0.08 * (np.asarray(labels["big"]) == "v1") + 0.05 * (np.asarray(labels["moderate"]) == "v1")
                + rng.normal(0, 0.01, 30))
    found = effects.joint_observations(accuracy, terms, {}, {}, evidence.DEFAULT_DIFFERENCE_FLOOR)
    assert found["big"].supported and found["big"].text.startswith("big: v1 beats v0 by +8.")
    assert found["moderate"].supported and "the model also holds big" in found["moderate"].text
    assert not found["none"].supported and found["none"].reason == "could be chance"


def test_values_with_too_few_runs_keep_a_column_but_are_not_compared():
    """A Bayes sweep draws some values rarely: they must neither bias the others nor be compared."""
    labels = ["relu"] * 12 + ["gelu"] * 10 + ["mish"] * 2
    term = effects.categorical_term("activation", labels)
    assert term.reference == "relu" and term.levels == ["gelu"]
    assert term.rare.shape == (24, 1) and term.rare[:, 0].sum() == 2
    alone = effects.categorical_term("batch_norm", ["True"] * 22 + ["False"] * 2)
    assert not alone.testable


def test_a_parameter_fixed_by_others_is_refused_without_nan():
    """e is aligned with neither a nor b alone, but a and b together fix it (e=y exactly when a=1, e=z
    exactly when b=1): once they are in the model it has no column of its own left."""
    rng = np.random.default_rng(2)
    cells = np.array([(0, 0), (1, 0), (0, 1)] * 10)
    a, b = cells[:, 0], cells[:, 1]
    labels = {"a": [str(v) for v in a], "b": [str(v) for v in b],
              "e": ["y" if x else "z" if y else "x" for x, y in cells]}
    terms = {name: effects.categorical_term(name, values) for name, values in labels.items()}
    accuracy = 0.5 + 0.1 * a + 0.1 * b + rng.normal(0, 0.01, 30)
    found = effects.joint_observations(accuracy, terms, {}, {}, evidence.DEFAULT_DIFFERENCE_FLOOR)
    for finding in found.values():
        assert "nan" not in finding.text.lower() and "inf" not in finding.text
    for name, others in (("e", "a, b together"), ("a", "e in"), ("b", "e in")):
        assert found[name].reason == "confounded" and f"fixed by those of {others}" in found[name].text


def test_basis_drops_aliased_columns():
    column = np.arange(6.0)[:, None]
    assert effects.basis(np.hstack([column, 2 * column, np.ones((6, 1))])).shape == (6, 2)
    assert math.isclose(float(effects.residual_sum_of_squares(np.ones((1, 6)), effects.basis(np.ones((6, 1))))[0]), 0,
                        abs_tol=1e-9)


def _tests(p_values):
    return {f"p{i}": effects.AdditionTest(1.0, 1, 20, p) for i, p in enumerate(p_values)}


def test_claims_control_the_false_discovery_rate_not_the_family_wise_error():
    """Benjamini-Hochberg: once a strong effect is claimed, a second faces 2 alpha / m (Holm: alpha / (m - 1)).
    p = 0.008 among 12 parameters passes 2 x 0.05 / 12 = 0.0083 but not Holm's 0.05 / 11 = 0.0045."""
    tests = _tests([0.0001, 0.008] + [0.3] * 10)
    entries = effects.benjamini_hochberg(tests)
    p1 = entries["p1"]
    assert (p1.threshold, p1.rank, p1.family, p1.rejected) == (pytest.approx(2 * 0.05 / 12), 2, 12, True)
    assert not any(entries[f"p{i}"].rejected for i in range(2, 12))


def test_the_step_up_rejects_every_rank_up_to_the_last_that_passes():
    """p = 0.03, 0.031, 0.032 among 3: the third passes 3 x 0.05 / 3, so all three are claimed, though
    the first is above 0.05 / 3 (where a step-down procedure would stop at once)."""
    tests = _tests([0.03, 0.031, 0.032])
    entries = effects.benjamini_hochberg(tests).values()
    assert all(e.rejected and e.threshold == pytest.approx(0.05) for e in entries)
    tests = _tests([0.03, 0.04, 0.06])
    assert not any(e.rejected for e in effects.benjamini_hochberg(tests).values())


def test_a_term_fixed_only_by_rarely_drawn_values_says_so_instead_of_an_empty_name_list():
    from shared.effects import fixed_reason

    assert "those of" not in fixed_reason([]) and "drawn too rarely" in fixed_reason([])
    assert fixed_reason(["lr", "dropout"]).startswith("its values are fixed by those of lr, dropout together")
