"""Question 3's joint model: each swept parameter's effect on validation accuracy, adjusted for the others.

Introduced in Part-A/02, through `sweep_plots.observations`, which hands this module the finished runs.

Why one model and not one parameter at a time. A comparison of one parameter alone leaves every other
parameter's effect in its spread, and in 30 random runs two parameters often go together by chance
(most augment=True runs also had batch_norm=True), so one parameter's effect is credited to the other.
Here one linear model of val_acc holds every swept parameter: a categorical value (or a discrete
number such as dropout) as one column per value, measured against the most common value; a continuous
one (lr) as a straight line in the scale `sweep_plots` gives it (log10 for lr). Each effect is then the
difference the parameter makes with the others held fixed.

Why two stages. With 30 runs and about 17 columns, a model with every parameter has about 12 residual
degrees of freedom: its noise estimate is too unstable to find moderate effects. So the model holds only
the parameters that earn a place. Stage 1 (`forward_selection`) builds it: at each step every parameter
not yet in is tested as an addition (the drop-one F statistic: how much it reduces the residual sum of
squares, per column, relative to the residual variance), and the smallest p-value enters while it is at
most alpha / (parameters still out), Holm's threshold. (A liberal threshold, or adding the near misses,
does not work: each null parameter that enters shrinks the residual and makes the next look stronger; in
simulation that doubled or tripled the false claims.) Stage 2 (`family_tests`) makes the claims: every
parameter is tested once against that model without it, and Benjamini-Hochberg's step-up procedure runs
over all m of them at alpha = 0.05 (sorted p-values; the k smallest are claimed for the largest k with
p_(k) <= k alpha / m).

Which error rate is controlled, and why that one. Benjamini-Hochberg controls the false discovery rate
(the expected share of claims that are false) at alpha. Question 3's goal (issue 14) bounds two other
things: (a) each parameter without effect is claimed in at most 5% of tables, and (b) a sweep in which
nothing matters gives any claim in at most 5% of tables. (b) is the family-wise error under the global
null, and there the false discovery rate IS the family-wise error (every claim is false), so BH bounds
it by alpha. (a) holds because a no-effect parameter is claimed only when its p-value is at most
k alpha / m, with k the number of claims: with two real effects in m = 12 parameters that is about
3 x 0.05 / 12 = 1.25% per parameter. What BH does not bound is the chance of at least one false claim
among many no-effect parameters once real effects are present (Holm did, at alpha): with ten of them
that chance is near 10%, and `benchmarks/observations_sim.py` reports it beside the goal's rates. The
gain: once a strong effect is claimed, a moderate one faces 2 alpha / m instead of alpha / (m - 1),
which is what lets a +4 pp effect against 3 pp noise be found in about 70% of 30-run tables instead of
64% (Holm's figure). The d >= MIN_COHENS_D and one-validation-image conditions stay; in simulation they
never refuse an effect BH claims (a difference this significant in 30 runs is above d = 1 anyway).

Why permutation p-values. Accuracies are bounded and a diverged run is an outlier, so the F distribution's
normal-error assumption is doubtful in 30 runs. Freedman-Lane's permutation test does not need it:
permute the residuals of the model without the tested parameter, add them back to that model's fitted
values, and recompute F; the p-value is the share of permutations with an F at least as large
(Freedman & Lane 1983, J. Bus. Econ. Stat. 1:292; Anderson & Legendre 1999, J. Stat. Comput. Simul.
62:271, found it the most reliable of the permutation schemes when predictors are correlated). With
LARGE_SAMPLE residual degrees of freedom or more the F distribution is accurate (central limit
theorem) and is used instead, so 20,000 runs take seconds.

What the model assumes. Effects add up (no interactions: batch_norm helps by the same amount at every
learning rate); lr acts on a straight line in log10 (a peak inside the range shows as a weak slope);
the noise of a run does not depend on its config, nor on which configs were drawn. A Bayes sweep bends
the last two: it draws values far from balanced (concentrated near the best configs found so far), and
it draws them because earlier runs were lucky. The model still separates parameters as long as each
compared value has MIN_RUNS_PER_GROUP runs (values with fewer keep a column of their own, so they do not
bias the others, and are left out of the comparison), but its estimates describe the region the sweep
explored, rare values cost power, and a parameter whose values were copied along with a real effect's
can stand in for it. `benchmarks/observations_sim.py` measures that cost (see its results).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from . import evidence

PERMUTATIONS = 2_000   # resolves p-values down to 1/2001, below the strictest threshold (0.05/13)
LARGE_SAMPLE = 500     # residual degrees of freedom from which the F distribution replaces permutations
NO_SPREAD = 1e-9         # a residual standard deviation below this is float rounding of identical accuracies
MISSING = "not recorded"  # the label of runs whose record lacks the parameter: kept in the model, never compared


@dataclass
class Term:
    """One parameter in the model: its columns, and its runs' values for the printed groups."""
    name: str
    labels: list[str]             # each run's value (or half of the range) as printed
    columns: np.ndarray           # (runs, k): the columns tested for this parameter
    rare: np.ndarray              # (runs, j): one column per value with too few runs, always in the model
    levels: list[str]             # what each tested column stands for (values; for a line, the name)
    reference: str | None = None  # the value the columns are measured against (categorical terms)
    scale: np.ndarray | None = None  # a continuous term's values on the model's scale

    @property
    def testable(self) -> bool:
        return self.columns.shape[1] > 0


def categorical_term(name: str, labels: list[str]) -> Term:
    """One column per value with at least MIN_RUNS_PER_GROUP runs, except the most common (the reference)."""
    values, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    common = [v for v, c in zip(values, counts) if c >= evidence.MIN_RUNS_PER_GROUP and v != MISSING]
    rare = [v for v in values if v not in common]
    reference = max(common, key=lambda v: counts[list(values).index(v)]) if common else None
    tested = [v for v in common if v != reference]
    label_array = np.asarray(labels, dtype=str)

    def indicators(chosen: list[str]) -> np.ndarray:
        return np.stack([label_array == v for v in chosen], 1).astype(float) if chosen else np.zeros((len(labels), 0))

    return Term(name, list(labels), indicators(tested), indicators(rare), tested, reference)


def continuous_term(name: str, labels: list[str], scale: np.ndarray) -> Term:
    """A straight line in `scale` (e.g. log10 lr); testable with at least two groups' worth of runs. Runs without a
    value (NaN) get their own column and the mean on the line, so they neither bend it nor count on either side."""
    scale = np.asarray(scale, dtype=float)
    known = np.isfinite(scale)
    enough = known.sum() >= 2 * evidence.MIN_RUNS_PER_GROUP and np.ptp(scale[known]) > 0
    centred = np.where(known, scale - scale[known].mean(), 0.0) if known.any() else np.zeros(len(scale))
    columns = centred[:, None] if enough else np.zeros((len(scale), 0))
    rare = (~known).astype(float)[:, None] if not known.all() else np.zeros((len(scale), 0))
    return Term(name, list(labels), columns, rare, [name] if enough else [], scale=np.where(known, scale, np.nan))


def basis(matrix: np.ndarray) -> np.ndarray:
    """Orthonormal columns spanning `matrix`'s columns (rank-revealing: aliased columns add nothing)."""
    if matrix.shape[1] == 0:
        return matrix
    left, singular, _ = np.linalg.svd(matrix, full_matrices=False)
    tolerance = max(matrix.shape) * np.finfo(float).eps * (singular[0] if len(singular) else 0.0)
    return left[:, singular > tolerance]


def residual_sum_of_squares(rows: np.ndarray, orthonormal: np.ndarray) -> np.ndarray:
    """For each row vector y of `rows`: ||y - projection of y on the columns||^2."""
    return (rows * rows).sum(-1) - ((rows @ orthonormal) ** 2).sum(-1)


@dataclass
class AdditionTest:
    """Adding one term to a model: its F statistic, degrees of freedom and p-value."""
    f: float
    columns: int       # degrees of freedom the term adds (0: aliased with the model)
    residual: int      # residual degrees of freedom with the term in
    p_value: float     # the permutation p-value below LARGE_SAMPLE residual degrees of freedom, else f_p_value
    f_p_value: float = math.nan  # the F distribution's p-value


def addition_tests(accuracy: np.ndarray, model: np.ndarray, candidates: dict[str, np.ndarray],
                   permutations: int = PERMUTATIONS, seed: int = 0) -> dict[str, AdditionTest]:
    """Test adding each candidate's columns to `model` (which holds the intercept): drop-one F, with
    Freedman-Lane permutation p-values below LARGE_SAMPLE residual degrees of freedom.

    All candidates share the permutations of the reduced model's residuals, so one step costs one set."""
    reduced = basis(model)
    residuals = accuracy - reduced @ (reduced.T @ accuracy)
    reduced_rss = float(residuals @ residuals)
    runs = len(accuracy)
    setups, tests = {}, {}
    for name, columns in candidates.items():
        full = basis(np.hstack([model, columns]))
        added, residual_df = full.shape[1] - reduced.shape[1], runs - full.shape[1]
        full_rss = float(residual_sum_of_squares(accuracy[None], full)[0])
        if added == 0 or residual_df < 1 or full_rss <= NO_SPREAD ** 2 * runs:
            tests[name] = AdditionTest(math.nan, added, residual_df, math.nan)
            continue
        f = (reduced_rss - full_rss) / added / (full_rss / residual_df)
        setups[name] = (full, added, residual_df, f)
        f_p_value = float(stats.f.sf(f, added, residual_df))
        tests[name] = AdditionTest(f, added, residual_df, f_p_value, f_p_value)
    small = {name: setup for name, setup in setups.items() if setup[2] < LARGE_SAMPLE}
    if small:
        exceed = {name: 0 for name in small}
        rng = np.random.default_rng(seed)
        chunk = max(1, min(permutations, evidence.PERMUTATION_CHUNK // runs))
        for start in range(0, permutations, chunk):
            shuffled = rng.permuted(np.tile(residuals, (min(chunk, permutations - start), 1)), axis=1)
            shuffled_reduced = residual_sum_of_squares(shuffled, reduced)
            for name, (full, added, residual_df, f) in small.items():
                # The reduced model's fitted values lie in both spans, so only the permuted residuals matter.
                shuffled_full = residual_sum_of_squares(shuffled, full)
                shuffled_f = (shuffled_reduced - shuffled_full) / added / np.maximum(shuffled_full / residual_df, 1e-300)
                exceed[name] += int((shuffled_f >= f * (1 - 1e-9)).sum())
        for name in small:
            tests[name].p_value = (exceed[name] + 1) / (permutations + 1)
    return tests


@dataclass
class Entry:
    """A term's final test (in the selected model) and the Benjamini-Hochberg decision at its rank."""
    test: AdditionTest
    threshold: float   # the p-value it had to reach: the step-up cut if rejected, else rank x alpha / family
    rank: int          # its place among the family's p-values, smallest first (1-based)
    family: int        # the number of parameters tested together
    rejected: bool     # the procedure rejects 'no effect': the evidence says the term changes accuracy


def _ordered(tests: dict[str, AdditionTest]) -> list[str]:
    """Names by p-value; equal permutation p-values (all at the floor) by the F distribution's p-value."""
    usable = [n for n, t in tests.items() if math.isfinite(t.p_value)]
    return sorted(usable, key=lambda n: (tests[n].p_value, tests[n].f_p_value))


def forward_selection(accuracy: np.ndarray, base: np.ndarray, terms: dict[str, np.ndarray],
                      alpha: float = evidence.MAX_P_VALUE, permutations: int = PERMUTATIONS,
                      seed: int = 0) -> tuple[list[str], dict[str, AdditionTest]]:
    """Terms enter in order of p-value while p <= alpha / (terms still out), Holm's threshold.
    Returns the entered names in order (the model that `family_tests` adjusts for) and the last step's
    tests of the terms still out, each against that model (none when every term entered)."""
    entered, model, remaining = [], base, dict(terms)
    while remaining:
        tests = addition_tests(accuracy, model, remaining, permutations, seed)
        order = _ordered(tests)
        if not order or tests[order[0]].p_value > alpha / len(remaining):
            return entered, tests
        entered.append(order[0])
        model = np.hstack([model, remaining.pop(order[0])])
    return entered, {}


def family_tests(accuracy: np.ndarray, base: np.ndarray, terms: dict[str, np.ndarray], adjusted: list[str],
                 outside: dict[str, AdditionTest], alpha: float = evidence.MAX_P_VALUE,
                 permutations: int = PERMUTATIONS, seed: int = 0) -> dict[str, Entry]:
    """One family of tests in the selected model: each term against the model without it (drop-one for
    an entered term, add-one for the rest), then Benjamini-Hochberg's step-up procedure over all of them:
    with the m p-values sorted, the k smallest are rejected for the largest k with p_(k) <= k alpha / m.
    The add-one tests are `outside`: `forward_selection`'s last step already tested every term left out
    against exactly this model. A term that entered early, against a model that lacked a later one, must
    pass again here. Every test uses the same seed, so a test repeated from stage 1 gives the same
    p-value (no second chance by luck)."""
    tests = dict(outside)
    for name in adjusted:
        rest = np.hstack([base] + [terms[n] for n in adjusted if n != name])
        tests.update(addition_tests(accuracy, rest, {name: terms[name]}, permutations, seed))
    order = _ordered(tests)
    decisions = benjamini_hochberg(order, tests, alpha)
    entries = {name: Entry(tests[name], *decision) for name, decision in decisions.items()}
    for name in set(tests) - set(order):  # aliased with the model: no test
        entries[name] = Entry(tests[name], math.nan, 0, len(order), False)
    return entries


def benjamini_hochberg(order: list[str], tests: dict[str, AdditionTest],
                       alpha: float = evidence.MAX_P_VALUE) -> dict[str, tuple[float, int, int, bool]]:
    """For names sorted by p-value: (threshold, rank, family size, rejected). Step-up: the cut is the
    largest rank k with p_(k) <= k alpha / m, and every rank up to it is rejected, even one whose own
    p-value is above its rank's threshold."""
    family = len(order)
    passing = [rank for rank, name in enumerate(order, 1) if tests[name].p_value <= rank * alpha / family]
    cut = max(passing, default=0)
    return {name: ((cut if rank <= cut else rank) * alpha / family, rank, family, rank <= cut)
            for rank, name in enumerate(order, 1)}


def fit(accuracy: np.ndarray, design: np.ndarray) -> tuple[np.ndarray, float, int]:
    """Least squares: (coefficients, residual standard deviation, residual degrees of freedom)."""
    coefficients, *_ = np.linalg.lstsq(design, accuracy, rcond=None)
    residual = accuracy - design @ coefficients
    degrees = len(accuracy) - basis(design).shape[1]
    spread = math.sqrt(float(residual @ residual) / degrees) if degrees > 0 else math.nan
    return coefficients, (0.0 if spread < NO_SPREAD else spread), degrees


# --------------------------------------------------------------------------------------------
# From the model to sentences
# --------------------------------------------------------------------------------------------
@dataclass
class Effect:
    """A term's adjusted effect: `top` beats `bottom` by `difference` (>= 0) with the others held fixed."""
    top: str
    bottom: str
    difference: float
    spread: float      # residual standard deviation of the model it was estimated in
    runs: int

    @property
    def cohens_d(self) -> float:
        return self.difference / self.spread if self.spread > 0 else math.nan


def adjusted_effect(accuracy: np.ndarray, model: np.ndarray, term: Term, ends: tuple[str, str] | None) -> Effect:
    """`term`'s effect in the model `model` + term: the largest gap between its compared values'
    coefficients (the reference counts 0) or, for a line, its slope across the swept range."""
    coefficients, spread, _ = fit(accuracy, np.hstack([model, term.columns]))
    own = coefficients[model.shape[1]:]
    if term.scale is not None:
        low, high = ends or ("the lowest value", "the highest value")
        change = float(own[0]) * float(np.nanmax(term.scale) - np.nanmin(term.scale))
        top, bottom = (f"{term.name} = {high}", f"{term.name} = {low}") if change >= 0 else \
            (f"{term.name} = {low}", f"{term.name} = {high}")
        return Effect(top, bottom, abs(change), spread, len(accuracy))
    levels = {term.reference: 0.0, **{level: float(c) for level, c in zip(term.levels, own)}}
    top, bottom = max(levels, key=levels.get), min(levels, key=levels.get)
    return Effect(top, bottom, levels[top] - levels[bottom], spread, len(accuracy))


def raw_groups(term: Term, accuracy: np.ndarray, notes: dict[str, str], order) -> list[evidence.Group]:
    """The runs of each value (raw means, not adjusted), for the printed evidence."""
    labels = np.asarray(term.labels, dtype=str)
    return [evidence.Group(label, accuracy[labels == label].tolist(), notes.get(label, ""))
            for label in sorted(set(term.labels), key=order)]


def describe_groups(groups: list[evidence.Group]) -> str:
    """'Runs per value (raw means): ...; Left out (fewer than 3 finished runs): ...'."""
    compared = [g for g in groups if g.n >= evidence.MIN_RUNS_PER_GROUP and g.label != MISSING]
    few = [g for g in groups if g not in compared]
    text = "Runs per value (raw means): " + "; ".join(g.describe() for g in compared) + "."
    if few:
        text += (f" Left out (fewer than {evidence.MIN_RUNS_PER_GROUP} finished runs, or {MISSING}): "
                 + "; ".join(g.describe() for g in few) + ".")
    return text


def judge(term: Term, entry: Entry, effect: Effect, others: list[str], floor: float,
          groups: list[evidence.Group]) -> evidence.Finding:
    """A claim when the term entered the model AND its effect is finite, >= MIN_COHENS_D residual spreads
    and >= `floor`; otherwise a refusal that says which part failed."""
    name, test = term.name, entry.test
    kind = "permutation p" if test.residual < LARGE_SAMPLE else "F-test p"
    held = f"; the model also holds {', '.join(others)}" if others else "; no other parameter in the model"
    evidence_text = (f"joint model of {effect.runs} finished runs{held}; d = {effect.cohens_d:.2f} against the "
                     f"residual spread of {100 * effect.spread:.1f} pp; {kind} = {test.p_value:.4f}, "
                     f"Benjamini-Hochberg threshold {entry.threshold:.4f} at rank {entry.rank} of {entry.family} "
                     f"parameter(s)")
    finding = evidence.Finding(name, False, "", None, groups, effect.difference, effect.cohens_d, test.p_value)
    refusal = f"The runs do not support a conclusion about {name}: "
    lead = f"{effect.top} leads {effect.bottom} by {evidence.pp(effect.difference)} in the joint model"
    if test.residual < 1:
        finding.reason = "too few runs"
        finding.text = refusal + f"too few runs for a model of every parameter. {describe_groups(groups)}"
    elif not all(map(math.isfinite, (effect.cohens_d, effect.difference, test.p_value))):
        finding.reason, finding.text = "no spread", (refusal + f"the runs have no spread left to measure noise by "
                                                      f"({lead}). {describe_groups(groups)}")
    elif not entry.rejected:
        finding.reason = "could be chance"
        finding.text = (refusal + f"{lead}, but a difference this large arises by chance too often ({evidence_text}). "
                        + describe_groups(groups))
    elif effect.cohens_d < evidence.MIN_COHENS_D:
        finding.reason = "spreads overlap"
        finding.text = (refusal + f"{lead}, less than {evidence.MIN_COHENS_D:g}x the residual spread "
                        f"({evidence_text}). " + describe_groups(groups))
    elif effect.difference < floor:
        finding.reason = "below the floor"
        finding.text = (refusal + f"{lead}, less than the {evidence.pp(floor)} a difference must reach to matter "
                        f"({evidence_text}). " + describe_groups(groups))
    else:
        finding.supported = True
        finding.text = (f"{name}: {effect.top} beats {effect.bottom} by {evidence.pp(effect.difference)} of validation "
                        f"accuracy, adjusted for the parameters in the model ({evidence_text}). " + describe_groups(groups))
    return finding


def too_few_runs(term: Term, groups: list[evidence.Group]) -> evidence.Finding:
    counts = ", ".join(f"{g.label} n={g.n}" for g in groups)
    return evidence.Finding(term.name, False, f"The runs do not support a conclusion about {term.name}: too few runs "
                            f"({counts}; a comparison needs >= {evidence.MIN_RUNS_PER_GROUP} finished runs for at "
                            f"least two values).", "too few runs", groups)


def fixed_by_model(base: np.ndarray, terms: dict[str, np.ndarray], model: list[str]) -> dict[str, list[str]]:
    """Terms outside `model` that add no column of their own to it (e.g. activation=mish exactly when
    kernel_size=5 or dropout=0.3), each with the model terms that fix it, and those model terms with
    the terms they fix: the model cannot tell their effects apart."""
    rank = lambda names, extra=(): basis(np.hstack([base] + [terms[n] for n in names] + list(extra))).shape[1]
    full, fixed = rank(model), {}
    for name in (n for n in terms if n not in model):
        if rank(model, [terms[name]]) > full:
            continue
        fixers = [n for n in model if rank([m for m in model if m != n], [terms[name]])
                  > rank([m for m in model if m != n])]
        fixed[name] = fixers
        for n in fixers:
            fixed.setdefault(n, []).append(name)
    return fixed


def fixed_reason(fixers: list[str]) -> str:
    """Why a term's effect cannot be separated: the model terms that fix its values, or, when none does, the values
    drawn too rarely to compare (they keep their own columns, and together they can fix another term too)."""
    if not fixers:
        return ("its values are fixed, in these runs, by which values of other parameters were drawn too rarely to "
                "compare, so its effect cannot be separated from theirs.")
    return (f"its values are fixed by those of {', '.join(fixers)}{' together' if len(fixers) > 1 else ''} in these "
            f"runs, so its effect cannot be separated from theirs.")


def joint_observations(accuracy, terms: dict[str, Term], aligned: set[str], notes: dict[str, dict[str, str]],
                       ends: dict[str, tuple[str, str]], floor: float, order=str,
                       permutations: int = PERMUTATIONS, seed: int = 0) -> dict[str, evidence.Finding]:
    """Every term's finding from one forward selection. `aligned` terms (perfectly aligned with another
    parameter) are never tested but stay in the model; values with too few runs keep their own columns.
    `notes`: per term and value, remarks on the runs left out; `ends`: a line's lowest and highest value as
    printed; `floor`: the smallest difference that matters (a fraction)."""
    accuracy = np.asarray(accuracy, dtype=float)
    base = np.hstack([np.ones((len(accuracy), 1))] + [t.rare for t in terms.values()]
                     + [t.columns for name, t in terms.items() if name in aligned])
    candidates = {name: t.columns for name, t in terms.items() if t.testable and name not in aligned}
    adjusted, outside = forward_selection(accuracy, base, candidates, permutations=permutations, seed=seed)
    entries = family_tests(accuracy, base, candidates, adjusted, outside, permutations=permutations, seed=seed)
    core = np.hstack([np.ones((len(accuracy), 1))] + [t.rare for t in terms.values()])
    fixed = fixed_by_model(core, {**candidates, **{n: terms[n].columns for n in aligned}}, adjusted + sorted(aligned))
    findings = {}
    for name, term in terms.items():
        if name in aligned:  # the caller refuses it, naming its partner
            continue
        groups = raw_groups(term, accuracy, notes.get(name, {}), order)
        if name in fixed:
            findings[name] = evidence.Finding(name, False, f"The runs do not support a conclusion about {name}: "
                                              f"{fixed_reason(fixed[name])} " + describe_groups(groups),
                                              "confounded", groups)
            continue
        if name not in candidates:
            findings[name] = too_few_runs(term, groups)
            continue
        others = [n for n in adjusted if n != name]
        model = np.hstack([base] + [candidates[n] for n in others])
        effect = adjusted_effect(accuracy, model, term, ends.get(name))
        findings[name] = judge(term, entries[name], effect, others, floor, groups)
    return findings
