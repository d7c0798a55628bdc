"""Dataset inference engine: p-value versus suspect-set size n, minimum n, and a null control.

The aggregator (a plugin) turns feature matrices of a suspect set P and a validation set U into
one p-value per draw; this module owns everything around it, so every aggregator is judged the same
way (attacks.md §6.2, §7):

- For each n of the grid, ``draws`` independent draws of n members (P) and n non-members (U),
  each without replacement.
- ``min_n`` is the paper's rule: the smallest n whose *mean* p-value is <= alpha. Because a mean
  p-value can sit below alpha while most draws do not reject (and the reverse), ``min_n_frac``
  is also given: the smallest n at which at least half of the draws reject at alpha.
- The primary test (``primary=True``): exactly one test, declared before the run, on all of P
  against U (or on ``primary_n`` rows of each): its p-value is the claim; the grid above is the
  paper's exploratory figure, and its minimum n is a search over many tests.
- Null control: P and U are both drawn from the non-members (disjoint), so every rejection is a
  false positive. A DI answer may back a copyright claim, so the measured false-positive rate is
  reported per n next to alpha (validity.md §1): a mean p-value hides an over-rejecting test,
  the per-draw rate does not. Draws whose test is undefined are left out of the rate and
  counted; sizes where no null can run (2n above the non-members) are named, never shown as 0.
- The null rate's upper bound accounts for the draws sharing one finite pool (validity.md §3):
  the mean over random disjoint (P, U) pairs of a pool is a U-statistic, which Hoeffding's
  decomposition dominates in convex order by the mean over one partition of the pool into
  K = floor(|U| / 2n) disjoint pairs, i.e. K independent tests. So the Chernoff (KL) bound with
  K trials holds for it, not one with the number of draws (``null_bound``).

Optional fast path (beyond the ``Aggregator`` contract): an aggregator may define
``pooled(A, B)`` returning an object whose ``pvalues(mask_P [R, Na], mask_U [R, Nb], rng)`` gives
the same p-values as ``pvalues`` on the gathered rows; ``run_di`` uses it once draws are made
as masks (n >= N/64, ``MASK_FRACTION``), so both paths see the same draws (MinMaxSum has one).

Concurrency: the (n, main or null) cells of the grid run on a thread pool. ``pvalues`` of an
aggregator is therefore called from several threads at once, each call with its own ``rng``;
an aggregator that keeps mutable state between calls must set ``thread_safe = False``.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .errors import ConfigError

__all__ = ["default_grid", "null_bound", "null_exceeds", "null_mark", "primary_test", "run_di", "sample_subsets",
           "sample_masks"]

#: bytes of gathered features (P and U together) processed per chunk of draws
CHUNK_BYTES = 16 * 2**20
#: from this fraction of the pool on, a draw is made as a mask over the pool (O(N) per draw)
#: rather than as a list of indices, and an aggregator's pooled fast path takes over, which on
#: 10,000 x 25 costs about what gathering the [R, n, d] copies does at this n and less above
MASK_FRACTION = 1 / 64
#: most threads ``run_di`` spreads the grid over by default
MAX_WORKERS = 8
#: at most this many proposals (row positions) are held at once while picking rows
PROPOSALS = 1 << 22
#: a mask taking at least this fraction of the free rows starts from a Bernoulli draw
BERNOULLI_FRACTION = 1 / 8


def _as_masks(k: int, N: int) -> bool:
    """Whether k rows of a pool of N are drawn as a mask (and pooled fast paths apply)."""
    return k >= MASK_FRACTION * N


def _workers(requested: int | None) -> int:
    if requested is not None:
        if int(requested) < 1:
            raise ConfigError(f"workers must be >= 1, got {requested}")
        return int(requested)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def _map(fn, tasks: list[tuple], workers: int) -> list:
    """``[fn(*t) for t in tasks]``, on ``workers`` threads when more than one. Each thread then
    gets one BLAS thread, so the threads do not fight over the cores inside matrix products."""
    if workers == 1 or len(tasks) < 2:
        return [fn(*t) for t in tasks]
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), \
            ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as ex:
        return list(ex.map(lambda t: fn(*t), tasks))


def default_grid(max_n: int) -> list[int]:
    """The paper's grid {2..10} ∪ {20..100 step 10} ∪ {200..1000 step 100} ∪ {2000..10000 step
    1000}, cut at ``max_n``."""
    grid = (list(range(2, 11)) + list(range(20, 101, 10)) + list(range(200, 1001, 100))
            + list(range(2000, 10001, 1000)))
    return [n for n in grid if n <= max_n]


def sample_subsets(rng: np.random.Generator, N: int, n: int, reps: int) -> np.ndarray:
    """[reps, n] indices, each row a uniform n-subset of range(N) (no repeats within a row).

    Small n: draw with replacement and redraw repeated entries until none is left. The procedure
    only compares values for equality, so its law is invariant under relabelling the population,
    which makes the final set uniform over n-subsets; it costs O(n log n) per row instead of O(N).
    Large n: ``sample_masks`` (O(N) per row), indices in increasing order, so a caller that
    splits a draw by position must permute it first (``run_di`` does, ``_permuted``).
    """
    if not 0 < n <= N:
        raise ValueError(f"cannot draw {n} of {N} without replacement")
    if _as_masks(n, N):  # large n: a mask (O(N) per row) beats sorting the proposals
        (mask,) = sample_masks(rng, N, (n,), reps)
        return np.nonzero(mask)[1].reshape(reps, n)
    idx = rng.integers(0, N, size=(reps, n))
    rows = np.arange(reps)
    while rows.size:
        again = ~_first_occurrences(idx[rows])
        r, c = np.nonzero(again)
        idx[rows[r], c] = rng.integers(0, N, size=r.size)
        rows = rows[again.any(axis=1)]
    return idx


def _first_occurrences(prop: np.ndarray) -> np.ndarray:
    """[m, w] bool: True where a row's entry is the first of its value in that row."""
    order = np.argsort(prop, axis=1, kind="stable")
    s = np.take_along_axis(prop, order, axis=1)
    first_sorted = np.ones(prop.shape, dtype=bool)
    first_sorted[:, 1:] = s[:, 1:] != s[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    return first


def _pick(rng: np.random.Generator, eligible: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """[R, N] mask with exactly ``counts[r]`` rows picked among ``eligible[r]``, uniform over
    such subsets.

    Rows are proposed uniformly at random and a proposal is accepted if it is eligible and not
    picked yet (sampling without replacement by rejection). While most rows are acceptable, a
    round proposes exactly each row's deficit, so it can never pick too many; once acceptance is
    rare (a short list of eligible rows), a round proposes enough for the whole deficit and
    keeps only the first ``deficit`` distinct acceptable proposals, in proposal order. Either
    way the procedure only looks at which proposals are equal and acceptable, so its law is
    invariant under relabelling the eligible rows: the picked set is uniform."""
    R, N = eligible.shape
    picked = np.zeros_like(eligible)
    counts = np.asarray(counts, dtype=np.int64)
    deficit = counts.copy()
    avail = np.count_nonzero(eligible, axis=1).astype(np.int64)
    if (deficit > avail).any():
        raise ValueError("cannot pick more rows than are eligible")
    eligible_flat, picked_flat = eligible.reshape(-1), picked.reshape(-1)
    rows = np.flatnonzero(deficit > 0)
    while rows.size:
        d, a = deficit[rows], avail[rows]
        exact = 3 * a.min() >= 2 * N
        if exact:  # acceptance >= 2/3: propose each row's deficit, so none can overshoot
            prop = rng.integers(0, N, size=(rows.size, int(d.max())))
            ok = np.arange(prop.shape[1])[None, :] < d[:, None]
        else:  # proposals per acceptance ~ N / a: enough for the deficit, a quarter more
            width = int(np.ceil((d * N / a).max() * 1.25)) + 4
            prop = rng.integers(0, N, size=(rows.size, max(1, min(width, PROPOSALS // rows.size))))
            ok = _first_occurrences(prop)
        flat = prop + (rows * N)[:, None]          # positions in the raveled [R, N] arrays
        ok &= eligible_flat[flat] & ~picked_flat[flat]
        if not exact:
            ok &= np.cumsum(ok, axis=1) <= d[:, None]
        picked_flat[flat[ok]] = True
        if exact:  # a repeated proposal was acceptable twice: count what was set
            got = np.count_nonzero(picked if rows.size == R else picked[rows], axis=1)
            got -= counts[rows] - d
        else:
            got = np.count_nonzero(ok, axis=1)
        deficit[rows] -= got
        avail[rows] -= got
        rows = rows[deficit[rows] > 0]
    return picked


def sample_masks(rng: np.random.Generator, N: int, sizes: Sequence[int],
                 reps: int) -> list[np.ndarray]:
    """Disjoint boolean masks [reps, N] with exactly ``sizes[k]`` True per row, uniform over such
    disjoint subsets: one after the other, each a uniform subset of the rows still free.

    Of a mask and its complement among the free rows, the smaller (j rows) is drawn. A small
    one is picked by rejection (``_pick``); from an eighth of the free rows on, a Bernoulli draw
    of the free rows at rate j / free comes first, then the surplus is removed (a uniform subset
    of the drawn rows) or the shortfall added (a uniform subset of the free rows not drawn):
    about sqrt(j) rows, so O(N) per row whatever j, where rejection alone slows down as the
    rows it may still pick run out. Every step looks only at which rows are free and drawn, so
    the law is invariant under relabelling the free rows: uniform over j-subsets of them."""
    sizes = [int(k) for k in sizes]
    if not 0 < sum(sizes) <= N or min(sizes) < 0:
        raise ValueError(f"cannot draw {sum(sizes)} of {N} without replacement")
    taken = np.zeros((reps, N), dtype=bool)
    out = []
    free = N
    for k in sizes:
        allowed = ~taken
        j = min(k, free - k)
        if j == 0:
            m = np.zeros_like(taken)
        elif j < BERNOULLI_FRACTION * free:
            m = _pick(rng, allowed, np.full(reps, j))
        else:
            m = rng.integers(0, 65536, size=(reps, N), dtype=np.uint16) < round(65536 * j / free)
            m &= allowed
            surplus = np.count_nonzero(m, axis=1) - j
            m &= ~_pick(rng, m, np.maximum(surplus, 0))
            m |= _pick(rng, allowed & ~m, np.maximum(-surplus, 0))
        if j != k:
            m = allowed & ~m
        taken |= m
        free -= k
        out.append(m)
    return out


def _fill_nan(members: np.ndarray, nonmembers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN -> the column median of the pooled data (0 for an all-NaN column): an undefined
    feature value then carries no evidence either way."""
    pooled = np.concatenate([members, nonmembers])
    if not np.isnan(pooled).any():
        return members, nonmembers
    med = np.zeros(pooled.shape[1])
    ok = ~np.isnan(pooled).all(axis=0)
    med[ok] = np.nanmedian(pooled[:, ok], axis=0)
    return (np.where(np.isnan(members), med, members), np.where(np.isnan(nonmembers), med,
                                                                 nonmembers))


def _permuted(rng: np.random.Generator, idx: np.ndarray) -> np.ndarray:
    """Each row of draw indices in a fresh random order. Draws made as masks come back in pool
    order, so without this an aggregator that splits a draw by position (``cdi``: control half,
    test half) would split every draw at nearly the same place of the once-shuffled pool and
    average over one partition, not over random ones (validity.md §3)."""
    return rng.permuted(idx, axis=1)


def _pvalues(aggregator, A: np.ndarray, B: np.ndarray | None, n: int, draws: int, rng,
             pooled=None) -> np.ndarray:
    """p-values of ``draws`` draws at size n. ``B is None``: null control, P and U disjoint, both
    from A. Chunks bound the gathered [c, n, d] arrays (or the [c, N] masks of the pooled path)."""
    null = B is None
    Na, d = A.shape
    if pooled is not None:
        chunk = max(1, min(draws, CHUNK_BYTES // max(1, 3 * Na * 8)))
    else:
        chunk = max(1, min(draws, CHUNK_BYTES // max(1, 2 * n * d * 8)))
    out = np.empty(draws)
    # the within-draw orders come from a stream of their own, so the pooled path (which needs
    # no order) and the gathered path still draw the same subsets from ``rng``
    order = rng.spawn(1)[0]
    for start in range(0, draws, chunk):
        c = min(chunk, draws - start)
        if pooled is not None:
            if null:
                mP, mU = sample_masks(rng, Na, (n, n), c)
            else:
                (mP,) = sample_masks(rng, Na, (n,), c)
                (mU,) = sample_masks(rng, B.shape[0], (n,), c)
            p = pooled.pvalues(mP, mU, rng)
        elif null and _as_masks(2 * n, Na):  # the same draws the pooled path would make
            mP, mU = sample_masks(rng, Na, (n, n), c)
            p = aggregator.pvalues(A[_permuted(order, np.nonzero(mP)[1].reshape(c, n))],
                                   A[_permuted(order, np.nonzero(mU)[1].reshape(c, n))], rng)
        elif null:
            idx = _permuted(order, sample_subsets(rng, Na, 2 * n, c))
            p = aggregator.pvalues(A[idx[:, :n]], A[idx[:, n:]], rng)
        else:
            p = aggregator.pvalues(A[_permuted(order, sample_subsets(rng, Na, n, c))],
                                   B[_permuted(order, sample_subsets(rng, B.shape[0], n, c))], rng)
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (c,):
            name = getattr(aggregator, "registered_name", "") or type(aggregator).__name__
            raise ConfigError(f"aggregator '{name}' returned p-values of shape {p.shape}, "
                              f"expected ({c},)")
        out[start:start + c] = p
    return out


def _summary(n: int, p: np.ndarray, alpha: float) -> dict:
    undefined = np.isnan(p)
    q = np.where(undefined, 1.0, p)  # an undefined test (e.g. too few samples) never rejects
    return {"n": int(n), "mean_p": float(q.mean()), "median_p": float(np.median(q)),
            "frac_reject": float((q <= alpha).mean()), "draws": int(p.size),
            "undefined": int(undefined.sum()), "rejects": int((q <= alpha).sum())}


def _null_row(n: int, p: np.ndarray, alpha: float, Nu: int, level: float) -> dict:
    """A null-control row: the summary plus the rate over the valid (defined) tests only, how
    many independent tests the pool holds at this n, and the pool-aware upper bound."""
    row = _summary(n, p, alpha)
    valid = row["draws"] - row["undefined"]
    K = Nu // (2 * n)
    row.update(valid=valid, independent=K,
               fpr=row["rejects"] / valid if valid else None,
               fpr_upper=null_bound(row["rejects"], valid, row["draws"], K, level)
               if valid else None)
    return row


def kl_upper(rate: float, trials: float, delta: float) -> float:
    """Chernoff upper confidence bound of a Bernoulli mean: the largest q >= rate with
    trials * KL(rate || q) <= log(1 / delta) (1 when trials is 0)."""
    if trials <= 0 or rate >= 1:
        return 1.0
    target = np.log(1 / delta) / trials

    def kl(q):
        a = 0.0 if rate == 0 else rate * np.log(rate / q)
        return a + (1 - rate) * np.log((1 - rate) / (1 - q))

    lo, hi = rate, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if kl(mid) > target:
            hi = mid
        else:
            lo = mid
    return float(hi)


def null_bound(rejects: int, valid: int, draws: int, independent: int,
               level: float = 0.95) -> float:
    """Upper confidence bound (at ``level``) of the false-positive rate a fresh user faces, from
    ``rejects`` of ``valid`` defined null tests among ``draws`` random disjoint draws of a pool
    that holds ``independent`` disjoint (P, U) pairs at this n.

    Two steps, each at (1 - level) / 2: the draws estimate the pool's complete U-statistic
    (they are independent given the pool: Chernoff with ``valid`` trials), and that statistic
    estimates the rate with no more precision than ``independent`` independent tests (Hoeffding's
    convex-order domination, so Chernoff with K trials; K is scaled by the defined fraction)."""
    if valid <= 0:
        return 1.0
    delta = (1 - level) / 2
    u = kl_upper(rejects / valid, valid, delta)
    K = int(independent * valid / max(draws, valid))
    return kl_upper(u, K, delta)


def primary_test(aggregator, members: np.ndarray, nonmembers: np.ndarray, n: int | None,
                 alpha: float, seed: int) -> dict:
    """The one pre-declared test: n rows of P against n rows of U (default: all of the smaller
    set, a random subset of the larger), in a random order fixed by the seed. Inputs as given to
    ``run_di`` (already shuffled and NaN-filled). Returns n, p_value (None when the test is
    undefined), rejects."""
    Nm, Nu = members.shape[0], nonmembers.shape[0]
    n = min(Nm, Nu) if n is None else int(n)
    if n < 2:
        raise ConfigError(f"the primary DI test needs at least 2 members and 2 non-members; "
                          f"got {Nm} and {Nu}")
    if n > min(Nm, Nu):
        raise ConfigError(f"di.n = {n} exceeds the data: {Nm} members and {Nu} non-members; "
                          f"declare di.n <= {min(Nm, Nu)}")
    rng = np.random.default_rng([seed, 0x9B1])
    P = members[rng.permutation(Nm)[:n]]
    U = nonmembers[rng.permutation(Nu)[:n]]
    p = np.asarray(aggregator.pvalues(P[None], U[None], rng), dtype=np.float64).reshape(-1)
    if p.shape != (1,):
        name = getattr(aggregator, "registered_name", "") or type(aggregator).__name__
        raise ConfigError(f"aggregator '{name}' returned p-values of shape {p.shape} for one "
                          "draw, expected (1,)")
    defined = bool(np.isfinite(p[0]))
    return {"n": n, "p_value": float(p[0]) if defined else None,
            "rejects": bool(defined and p[0] <= alpha), "undefined": not defined,
            "alpha": float(alpha)}


def null_exceeds(fpr: float | None, valid: int | None, alpha: float | None) -> bool:
    """Whether a measured null rejection rate is above alpha by more than the draws' own noise
    (two binomial standard errors of ``valid`` tests): the mark reports show, for any
    aggregator. A test that holds alpha then is marked about 2 % of the time, not half."""
    if fpr is None or not valid or alpha is None:
        return False
    return fpr > alpha + 2 * float(np.sqrt(alpha * (1 - alpha) / valid))


def null_mark(fpr: float | None, valid: int | None, alpha: float | None) -> str:
    """The report's warning for an over-rejecting null control ("" when none)."""
    if not null_exceeds(fpr, valid, alpha):
        return ""
    return f"⚠ null FPR {fpr:.3f} > α {alpha:g}"


def _null_reason(n: int, Nu: int) -> str:
    return f"n = {n} needs 2n = {2 * n} non-members, {Nu} available"


def _null_note(null_per_n: list[dict], skipped: list[dict], Nu: int, enabled: bool) -> str:
    """What the null control could and could not measure, in words for the report."""
    if not enabled:
        return "null control off (di.null_control: false)"
    parts = []
    if not any(r["valid"] for r in null_per_n):
        ran = [f"n = {r['n']}: {r['undefined']} of {r['draws']} undefined" for r in null_per_n]
        why = "; ".join(ran) if ran else f"with {Nu} non-members no n of the grid fits (2n > {Nu})"
        return f"no valid null test ran ({why})"
    undef = [f"n = {r['n']}: {r['undefined']} of {r['draws']}" for r in null_per_n
             if r["undefined"]]
    if undef:
        parts.append("undefined tests left out of the rate (" + "; ".join(undef) + ")")
    if skipped:
        parts.append(f"no null for n >= {skipped[0]['n']} (2n > the {Nu} non-members)")
    return "; ".join(parts)


def run_di(aggregator, members: np.ndarray, nonmembers: np.ndarray, n_grid: Sequence[int],
           draws: int = 1000, alpha: float = 0.01, seed: int = 0,
           null_control: bool = True, workers: int | None = None, primary: bool = False,
           primary_n: int | None = None, level: float = 0.95) -> dict:
    """Run one aggregator over the grid of n. Features must already be oriented (higher = member).

    Per n (sizes larger than the pools are skipped): ``draws`` draws, p-values from
    ``aggregator.pvalues(P[R, n, d], U[R, n, d], rng)``; a NaN p-value (test undefined) counts as
    p = 1 and is counted in ``undefined``. The rows of every draw reach the aggregator in a fresh
    random order, so an aggregator that splits a draw by position splits each draw at random. Each n
    uses its own random stream derived from (seed, n), so a result for one n does not depend on
    the rest of the grid, nor on which of the ``workers`` threads computed it (default: one per
    core available to the process, at most ``MAX_WORKERS``; numpy releases the GIL in the work
    that matters). NaN features are replaced by pooled column medians.

    Returns a JSON-able dict: ``per_n`` (rows n, mean_p, median_p, frac_reject, rejects, draws,
    undefined), ``min_n`` (smallest n with mean p <= alpha, None if none), ``min_n_frac``
    (smallest n with frac_reject >= 0.5), ``null_per_n`` (the same per n plus ``valid`` defined
    tests, ``fpr`` = rejects / valid, ``independent`` disjoint pairs the pool holds and
    ``fpr_upper``, see ``null_bound``), ``null_skipped`` (n where no null can run, with the
    reason), ``null_note`` (what the null control could not measure, in words), ``null_fpr``
    (rejects over valid tests pooled over n; None when no valid null test ran), ``null_valid``,
    ``null_fpr_upper`` (the valid-weighted mean of the per-n bounds, each at a Bonferroni level
    over the n, so it holds for the pooled rate), ``alpha``, ``draws``, ``n_grid`` (the n run),
    and with ``primary`` the one pre-declared test, ``primary_test`` (``primary_test`` plus the
    null control at its n: at the largest n a null fits when 2n exceeds the non-members, named
    in ``null_n`` and ``null_note``).
    """
    members = np.asarray(members, dtype=np.float64)
    nonmembers = np.asarray(nonmembers, dtype=np.float64)
    if members.ndim != 2 or nonmembers.ndim != 2 or members.shape[1] != nonmembers.shape[1]:
        raise ConfigError("DI needs member and non-member feature matrices [N, d] with the same d; "
                          f"got {members.shape} and {nonmembers.shape}")
    if members.shape[1] == 0:
        raise ConfigError("DI needs at least one feature")
    if draws < 1:
        raise ConfigError(f"draws must be >= 1, got {draws}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    grid = sorted({int(n) for n in n_grid})
    if not grid or grid[0] < 2:
        raise ConfigError(f"n_grid needs sample sizes >= 2, got {list(n_grid)}")
    if primary_n is not None and int(primary_n) < 2:
        raise ConfigError(f"di.n needs a sample size >= 2, got {primary_n}")
    members, nonmembers = _fill_nan(members, nonmembers)
    shuffle = np.random.default_rng([seed, 0xD1])
    members = members[shuffle.permutation(members.shape[0])]
    nonmembers = nonmembers[shuffle.permutation(nonmembers.shape[0])]
    Nm, Nu = members.shape[0], nonmembers.shape[0]
    first = primary_test(aggregator, members, nonmembers, primary_n, alpha, seed) \
        if primary else None

    # optional fast path: an aggregator may offer ``pooled(A, B)`` returning an object whose
    # ``pvalues(mask_P [R, Na], mask_U [R, Nb], rng)`` equals ``pvalues`` on the gathered rows
    has_pooled = callable(getattr(aggregator, "pooled", None))
    tasks = []  # (n, null?, pool key or None)
    skipped = []
    for n in grid:
        if n > min(Nm, Nu):
            continue
        tasks.append((n, False, "main" if has_pooled and _as_masks(n, min(Nm, Nu)) else None))
        if null_control and 2 * n <= Nu:
            tasks.append((n, True, "null" if has_pooled and _as_masks(2 * n, Nu) else None))
        elif null_control:
            skipped.append({"n": n, "reason": _null_reason(n, Nu)})
    if first is not None and null_control:
        # the null at the primary test's n (or the largest that fits), unless the grid has it
        null_n = first["n"] if 2 * first["n"] <= Nu else Nu // 2
        if null_n >= 2 and (null_n, True) not in {(n, nl) for n, nl, _ in tasks}:
            tasks.append((null_n, True, "null" if has_pooled and _as_masks(2 * null_n, Nu)
                          else None))
    pools = {}
    if any(key == "main" for *_, key in tasks):
        pools["main"] = aggregator.pooled(members, nonmembers)
    if any(key == "null" for *_, key in tasks):
        pools["null"] = aggregator.pooled(nonmembers, nonmembers)

    def task(n, null, key):
        p = _pvalues(aggregator, nonmembers if null else members, None if null else nonmembers,
                     n, draws, np.random.default_rng([seed, n, int(null)]), pools.get(key))
        return _null_row(n, p, alpha, Nu, level) if null else _summary(n, p, alpha)

    threads = _workers(workers)
    rows = _map(task, tasks, threads if getattr(aggregator, "thread_safe", True) else 1)
    per_n = [row for (_, null, _), row in zip(tasks, rows) if not null]
    grid_run = {r["n"] for r in per_n}
    null_all = {row["n"]: row for (_, null, _), row in zip(tasks, rows) if null}
    null_per_n = [null_all[n] for n in sorted(null_all) if n in grid_run]

    valid = sum(r["valid"] for r in null_per_n)
    rejects = sum(r["rejects"] for r in null_per_n)
    upper = None
    if valid:
        # each n's bound at level 1 - (1 - level) / G holds for all G at once with ``level``
        lvl = 1 - (1 - level) / len(null_per_n)
        upper = sum(r["valid"] * null_bound(r["rejects"], r["valid"], r["draws"],
                                            r["independent"], lvl)
                    for r in null_per_n if r["valid"]) / valid
    out = {"per_n": per_n,
           "min_n": next((r["n"] for r in per_n if r["mean_p"] <= alpha), None),
           "min_n_frac": next((r["n"] for r in per_n if r["frac_reject"] >= 0.5), None),
           "null_per_n": null_per_n, "null_skipped": skipped,
           "null_note": _null_note(null_per_n, skipped, Nu, null_control),
           "null_fpr": rejects / valid if valid else None, "null_valid": valid,
           "null_fpr_upper": upper, "null_draws": sum(r["draws"] for r in null_per_n),
           "alpha": float(alpha), "draws": int(draws), "n_grid": sorted(grid_run)}
    if first is not None:
        out["primary_test"] = _with_null(first, null_all, Nu, null_control)
    return out


def _with_null(first: dict, null_all: dict, Nu: int, enabled: bool) -> dict:
    """The primary test's record with the null control at its n (or the nearest that fits)."""
    n = first["n"]
    null_n = n if 2 * n <= Nu else Nu // 2
    row = null_all.get(null_n) if enabled else None
    rec = dict(first, null_n=null_n if row else None, null_fpr=None, null_valid=0,
               null_draws=0, null_fpr_upper=None, null_independent=0)
    if row:
        rec.update(null_fpr=row["fpr"], null_valid=row["valid"], null_draws=row["draws"],
                   null_fpr_upper=row["fpr_upper"], null_independent=row["independent"])
    if not enabled:
        rec["null_note"] = "null control off (di.null_control: false)"
    elif row is None:
        rec["null_note"] = (f"no null test can run: {_null_reason(n, Nu)}, and fewer than 4 "
                            "non-members leave no smaller n")
    elif not row["valid"]:
        rec["null_note"] = (f"no valid null test ran at n = {null_n}: all {row['draws']} "
                            "undefined")
    elif null_n != n:
        rec["null_note"] = (f"no null at n = {n} ({_null_reason(n, Nu)}); measured at the "
                            f"largest n that fits, {null_n}")
    else:
        rec["null_note"] = ""
    return rec
