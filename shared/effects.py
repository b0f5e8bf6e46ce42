"""Question 3's joint model: each swept parameter's effect on validation accuracy, adjusted for the others.

Introduced in Part-A/02, through `sweep_plots.observations`. In 30 random runs two parameters often go
together by chance, so one compared alone is credited with the other's effect. One linear model of val_acc
holds them all: a categorical parameter as a column per value against its most common value, lr as a line.
`forward_selection` lets parameters in at Holm's threshold (30 runs cannot fit every parameter at once);
`family_tests` then tests each against that model without it and claims by Benjamini-Hochberg, which bounds
each no-effect parameter's claim rate at alpha (docs/tests.md gives the measured rates). p-values come from
Freedman-Lane permutations (Anderson & Legendre 1999): bounded accuracies and diverged runs make the F test's
normal errors doubtful in 30 runs; from LARGE_SAMPLE residual degrees of freedom the F distribution is used.

Assumptions: effects add up (no interactions); lr acts on a straight line in log10; a run's noise depends
neither on its config nor on which configs were drawn (a Bayes sweep bends this). Values with fewer than
MIN_RUNS_PER_GROUP runs keep a column of their own and are not compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from . import evidence
from .runs_frame import MISSING, natural_order

PERMUTATIONS = 2_000   # resolves p-values down to 1/2001, below the strictest threshold (0.05/13)
LARGE_SAMPLE = 500     # residual degrees of freedom from which the F distribution replaces permutations
NO_SPREAD = 1e-9         # a residual standard deviation below this is float rounding of identical accuracies


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
    label_array = np.asarray(labels, dtype=str)
    count = dict(zip(*np.unique(label_array, return_counts=True)))
    common = [v for v, c in count.items() if c >= evidence.MIN_RUNS_PER_GROUP and v != MISSING]
    rare = [v for v in count if v not in common]
    reference = max(common, key=count.get) if common else None
    tested = [v for v in common if v != reference]

    def indicators(chosen: list[str]) -> np.ndarray:
        return np.stack([label_array == v for v in chosen], 1).astype(float) if chosen else np.zeros((len(labels), 0))

    return Term(name, list(labels), indicators(tested), indicators(rare), tested, reference)


def continuous_term(name: str, labels: list[str], scale: np.ndarray) -> Term:
    """A straight line in `scale` (e.g. log10 lr); testable with at least two groups' worth of runs. Runs without a
    value (NaN) get their own column and the mean on the line, so they neither bend it nor count on either side."""
    scale = np.asarray(scale, dtype=float)
    known = np.isfinite(scale)
    enough = known.sum() >= 2 * evidence.MIN_RUNS_PER_GROUP and np.ptp(scale[known]) > 0
    columns = np.where(known, scale - scale[known].mean(), 0.0)[:, None] if enough else np.zeros((len(scale), 0))
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
    """Test adding each candidate's columns to `model` (which holds the intercept) by drop-one F. All candidates
    share the Freedman-Lane permutations of the reduced model's residuals, so one step costs one set."""
    reduced = basis(model)
    residuals = accuracy - reduced @ (reduced.T @ accuracy)
    reduced_rss = float(residuals @ residuals)
    runs = len(accuracy)
    small, tests = {}, {}
    for name, columns in candidates.items():
        full = basis(np.hstack([model, columns]))
        added, residual_df = full.shape[1] - reduced.shape[1], runs - full.shape[1]
        full_rss = float(residual_sum_of_squares(accuracy[None], full)[0])
        if added == 0 or residual_df < 1 or full_rss <= NO_SPREAD ** 2 * runs:
            tests[name] = AdditionTest(math.nan, added, residual_df, math.nan)
            continue
        f = (reduced_rss - full_rss) / added / (full_rss / residual_df)
        f_p_value = float(stats.f.sf(f, added, residual_df))
        tests[name] = AdditionTest(f, added, residual_df, f_p_value, f_p_value)
        if residual_df < LARGE_SAMPLE:
            small[name] = (full, added, residual_df, f)
    if small:
        exceed = dict.fromkeys(small, 0)
        for shuffled in evidence.permuted_rows(residuals, permutations, seed):
            shuffled_reduced = residual_sum_of_squares(shuffled, reduced)
            for name, (full, added, residual_df, f) in small.items():
                # The reduced model's fitted values lie in both spans, so only the permuted residuals matter.
                shuffled_full = residual_sum_of_squares(shuffled, full)
                shuffled_variance = np.maximum(shuffled_full / residual_df, 1e-300)
                shuffled_f = (shuffled_reduced - shuffled_full) / added / shuffled_variance
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
    """Terms enter in order of p-value while p <= alpha / (terms still out): a looser threshold lets null terms
    shrink the residual and make the next look stronger. Returns the entered names and the last step's tests."""
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
    """Each term against the selected model without it (`outside`: `forward_selection`'s last tests, made
    against exactly this model), then Benjamini-Hochberg. One seed for all: a repeat gets no second chance."""
    tests = dict(outside)
    for name in adjusted:
        rest = np.hstack([base] + [terms[n] for n in adjusted if n != name])
        tests.update(addition_tests(accuracy, rest, {name: terms[name]}, permutations, seed))
    return benjamini_hochberg(tests, alpha)


def benjamini_hochberg(tests: dict[str, AdditionTest], alpha: float = evidence.MAX_P_VALUE) -> dict[str, Entry]:
    """Every rank up to the largest k with p_(k) <= k alpha / m is rejected, even one whose own p-value is above
    its rank's threshold. A test without a p-value (aliased with the model) has rank 0 and is not rejected."""
    order = _ordered(tests)
    family = len(order)
    passing = [rank for rank, name in enumerate(order, 1) if tests[name].p_value <= rank * alpha / family]
    cut = max(passing, default=0)
    entries = {name: Entry(test, math.nan, 0, family, False) for name, test in tests.items()}
    for rank, name in enumerate(order, 1):
        entries[name] = Entry(tests[name], max(cut, rank) * alpha / family, rank, family, rank <= cut)
    return entries


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
    """`term`'s effect in `model` + term: the largest gap between its compared values' coefficients (the
    reference counts 0) or, for a line, its slope across the swept range."""
    design = np.hstack([model, term.columns])
    coefficients, *_ = np.linalg.lstsq(design, accuracy, rcond=None)
    residual, degrees = accuracy - design @ coefficients, len(accuracy) - basis(design).shape[1]
    spread = math.sqrt(float(residual @ residual) / degrees) if degrees > 0 else math.nan
    spread = 0.0 if spread < NO_SPREAD else spread
    own = coefficients[model.shape[1]:]
    if term.scale is not None:
        low, high = ends or ("the lowest value", "the highest value")
        change = float(own[0]) * float(np.nanmax(term.scale) - np.nanmin(term.scale))
        top, bottom = (high, low) if change >= 0 else (low, high)
        return Effect(f"{term.name} = {top}", f"{term.name} = {bottom}", abs(change), spread, len(accuracy))
    levels = {term.reference: 0.0, **{level: float(c) for level, c in zip(term.levels, own)}}
    top, bottom = max(levels, key=levels.get), min(levels, key=levels.get)
    return Effect(top, bottom, levels[top] - levels[bottom], spread, len(accuracy))


def runs_per_value(groups: list[evidence.Group]) -> str:
    """'Runs per value (raw means): ...; Left out (fewer than 3 finished runs, or not recorded): ...'."""
    compared = [g for g in groups if g.n >= evidence.MIN_RUNS_PER_GROUP and g.label != MISSING]
    return "Runs per value (raw means): " + evidence.describe_groups(
        compared, [g for g in groups if g not in compared], f", or {MISSING}")


def judge(term: Term, entry: Entry, effect: Effect, others: list[str], floor: float,
          groups: list[evidence.Group]) -> evidence.Finding:
    """A claim when Benjamini-Hochberg rejects 'no effect' AND the effect is finite, >= MIN_COHENS_D residual
    spreads and >= `floor`; otherwise a refusal that says which part failed."""
    name, test = term.name, entry.test
    kind = "permutation p" if test.residual < LARGE_SAMPLE else "F-test p"
    held = f"; the model also holds {', '.join(others)}" if others else "; no other parameter in the model"
    measured = (f"(joint model of {effect.runs} finished runs{held}; d = {effect.cohens_d:.2f} against the residual "
                f"spread of {100 * effect.spread:.1f} pp; {kind} = {test.p_value:.4f}, Benjamini-Hochberg threshold "
                f"{entry.threshold:.4f} at rank {entry.rank} of {entry.family} parameter(s))")
    lead = f"{effect.top} leads {effect.bottom} by {evidence.pp(effect.difference)} in the joint model"
    if test.residual < 1:
        reason, why = "too few runs", "too few runs for a model of every parameter"
    elif not all(map(math.isfinite, (effect.cohens_d, effect.difference, test.p_value))):
        reason, why = "no spread", f"the runs have no spread left to measure noise by ({lead})"
    elif not entry.rejected:
        reason, why = "could be chance", f"{lead}, but a difference this large arises by chance too often {measured}"
    elif effect.cohens_d < evidence.MIN_COHENS_D:
        reason, why = "spreads overlap", f"{lead}, less than {evidence.MIN_COHENS_D:g}x the residual spread {measured}"
    elif effect.difference < floor:
        reason = "below the floor"
        why = f"{lead}, less than the {evidence.pp(floor)} a difference must reach to matter {measured}"
    else:
        reason = None
    text = (f"The runs do not support a conclusion about {name}: {why}" if reason else
            f"{name}: {effect.top} beats {effect.bottom} by {evidence.pp(effect.difference)} of validation accuracy, "
            f"adjusted for the parameters in the model {measured}")
    return evidence.Finding(name, reason is None, f"{text}. {runs_per_value(groups)}", reason, groups,
                            effect.difference, effect.cohens_d, test.p_value)


def fixed_by_model(base: np.ndarray, terms: dict[str, np.ndarray], model: list[str]) -> dict[str, list[str]]:
    """Terms outside `model` that add no column of their own to it (e.g. activation=mish exactly when
    kernel_size=5 or dropout=0.3), each with the model terms that fix it, and those with the terms they fix."""
    def rank(names, extra=()):
        return basis(np.hstack([base] + [terms[n] for n in names] + list(extra))).shape[1]

    full, fixed = rank(model), {}
    for name in (n for n in terms if n not in model):
        if rank(model, [terms[name]]) > full:
            continue
        fixed[name] = [n for n in model if rank([m for m in model if m != n], [terms[name]])
                       > rank([m for m in model if m != n])]
        for n in fixed[name]:
            fixed.setdefault(n, []).append(name)
    return fixed


def fixed_reason(fixers: list[str]) -> str:
    """Why a term's effect cannot be separated: the model terms that fix its values or, when none does, the
    values drawn too rarely to compare (they keep their own columns, and together they can fix a term too)."""
    if not fixers:
        return ("its values are fixed, in these runs, by which values of other parameters were drawn too rarely to "
                "compare, so its effect cannot be separated from theirs.")
    return (f"its values are fixed by those of {', '.join(fixers)}{' together' if len(fixers) > 1 else ''} in these "
            f"runs, so its effect cannot be separated from theirs.")


def joint_observations(accuracy, terms: dict[str, Term], notes: dict[str, dict[str, str]],
                       ends: dict[str, tuple[str, str]], floor: float, permutations: int = PERMUTATIONS,
                       seed: int = 0) -> dict[str, evidence.Finding]:
    """Every term's finding from one forward selection; a testable term perfectly aligned with another stays in
    the model untested and is refused, naming the other. `notes`: per term and value, remarks on the runs left
    out; `ends`: a line's lowest and highest value as printed; `floor`: the smallest difference that matters."""
    accuracy = np.asarray(accuracy, dtype=float)
    partners = {name: [] for name in terms}
    for a, b in evidence.confounded_pairs({name: term.labels for name, term in terms.items()}):
        partners[a].append(b)
        partners[b].append(a)
    aligned = {name for name, term in terms.items() if partners[name] and term.testable}
    core = np.hstack([np.ones((len(accuracy), 1))] + [t.rare for t in terms.values()])
    base = np.hstack([core] + [terms[name].columns for name in terms if name in aligned])
    candidates = {name: t.columns for name, t in terms.items() if t.testable and name not in aligned}
    adjusted, outside = forward_selection(accuracy, base, candidates, permutations=permutations, seed=seed)
    entries = family_tests(accuracy, base, candidates, adjusted, outside, permutations=permutations, seed=seed)
    fixed = fixed_by_model(core, {**candidates, **{n: terms[n].columns for n in aligned}}, adjusted + sorted(aligned))
    findings = {}
    for name, term in terms.items():
        labels = np.asarray(term.labels, dtype=str)  # the printed groups: raw means, not adjusted
        groups = [evidence.Group(label, accuracy[labels == label].tolist(), notes.get(name, {}).get(label, ""))
                  for label in sorted(set(term.labels), key=natural_order)]
        if name in aligned:
            other = next((n for n in partners[name] if n in aligned), partners[name][0])
            pairs = sorted(set(zip(map(str, term.labels), map(str, terms[other].labels))))
            alignment = ", ".join(f"{name}={a} always with {other}={b}" for a, b in pairs)
            findings[name] = evidence.Finding(name, False, f"The runs do not support a conclusion about {name} alone: "
                                              f"it cannot be separated from {other} ({alignment} in the finished "
                                              f"runs), so any difference belongs to either. "
                                              + evidence.describe_groups(groups), "confounded", groups)
        elif name in fixed:
            findings[name] = evidence.Finding(name, False, f"The runs do not support a conclusion about {name}: "
                                              f"{fixed_reason(fixed[name])} " + runs_per_value(groups),
                                              "confounded", groups)
        elif name not in candidates:
            findings[name] = evidence.too_few_runs(name, groups)
        else:
            others = [n for n in adjusted if n != name]
            model = np.hstack([base] + [candidates[n] for n in others])
            effect = adjusted_effect(accuracy, model, term, ends.get(name))
            findings[name] = judge(term, entries[name], effect, others, floor, groups)
    return findings
