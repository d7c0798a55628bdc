"""The seven autoregressive MIA attacks of the IAR suite, computed from per-token summaries.

Why from ``TokenStats`` only: every formula of attacks.md §4.1–4.7 needs nothing but, per scored
token, the true token's log-prob ``lp``, the best other log-prob, ``mu = sum p log p`` and
``E = sum p (log p)^2`` (plus the token ids for Zlib). So one conditional + one null-condition pass
of the model serves all seven attacks, and the features can be recomputed from the cache without
the model. Pure numpy; the per-token work is vectorised, samples are looped (B is small, N is not).

Values are returned with the **sign the IAR extractor stores** (so they can be compared with IAR
feature dumps number for number), and each feature declares ``higher_is_member`` for exactly that
value. Where IAR negated a quantity (Hinge, SURP as coded, CAMIA 3–4) the class docstring says so.
The reference "divide by max, then 1 - x" scaling is *not* applied anywhere (attacks.md §5.1, §9
item 9): the core orients features from ``higher_is_member``.

Conventions shared by all attacks:
- ``mode="contrast"`` (default) reads ``token_stats/contrast``: the classifier-free-guidance
  contrast softmax(l_cond - l_null) of attacks.md §4.0; ``mode="conditional"`` reads
  ``token_stats/conditional`` (models without condition dropout, e.g. FIGARO).
- Multi-codebook tokens arrive flattened time-major (time, then codebook); every "position" below
  is an index into that flattened sequence.
- k grids are fractions of the sequence length N; ``K = int(k * N)`` exactly as IAR (Python float
  truncation). ``K = 0`` gives NaN (torch's mean over an empty top-k); the core replaces NaN.
- An empty sequence (N = 0) gives NaN for every feature, and so does any non-finite value
  (e.g. a Hinge margin of +inf for a one-token vocabulary), because ROC code rejects infinities.
"""

from __future__ import annotations

import math
import re
import zlib
from typing import Any, ClassVar, Sequence

import numpy as np

from harness.contracts import (
    TOKEN_STATS_CONDITIONAL,
    TOKEN_STATS_CONTRAST,
    Attack,
    BatchContext,
    FeatureSpec,
    TokenStats,
)
from harness.errors import ConfigError, DataError

#: IAR's k grid for Min-K%, Min-K%++ and SURP (conf/attack/llm_mia*.yaml)
K_GRID = (0.1, 0.2, 0.3, 0.4, 0.5)
#: IAR's SURP entropy grid (nats)
ENTROPY_GRID = (2.0, 4.0, 8.0, 16.0)
#: reference SURP defaults (mia_llms_benchmark attacks/surp.py: k=20 %, max_entropy=2.0)
SURP_INTENDED_K = (0.2,)
SURP_INTENDED_ENTROPY = (2.0,)
#: what the reference SURP stores when no token is both among the k lowest and low-entropy
SURP_EMPTY_VALUE = -100.0

MODES = {"contrast": TOKEN_STATS_CONTRAST, "conditional": TOKEN_STATS_CONDITIONAL}
NORMALIZE = ("variance", "std")
SURP_VARIANTS = ("intended", "iar-code")
ZLIB_OF = ("token-ids",)
_K_DOC = ("fractions of the sequence length, each in (0, 1]; a number or a list, one feature "
          "per value")
_NORMALIZE_DOC = ("variance: m_i = (lp - mu) / (sigma^2 + eps) (IAR code) | std: "
                  "/ sqrt(sigma^2 + eps) (Min-K%++ paper, MIMIR)")
_EPS_DOC = ("added to the variance before scaling, a finite number >= 0 (IAR: 1e-6; 0 with "
            "std reproduces the Min-K%++ paper exactly)")

#: MLflow's metric-name charset (the Windows one: no ':'), so every feature name logs as a metric
_METRIC_NAME_RE = re.compile(r"^[/\w.\- ]*$")

_PREPARED_KEY = "autoregressive-attacks/prepared"


# --------------------------------------------------------------------------------------------
# Per-sample token arrays, shared by all seven attacks of one batch


class _Tokens:
    """One sample's TokenStats as float64 arrays, plus lazily computed sorts and Min-K%++ scores
    that several attacks reuse (Min-K% and SURP share the sort; Min-K%++ and CAMIA share m_i)."""

    def __init__(self, ts: TokenStats, where: str):
        fields = ("logprob", "max_other_logprob", "mean_logprob", "var_logprob")
        arrays = [np.asarray(getattr(ts, f), dtype=np.float64).reshape(-1) for f in fields]
        self.token_ids = np.asarray(ts.token_ids).reshape(-1)
        lengths = {f: a.shape[0] for f, a in zip(fields, arrays)}
        lengths["token_ids"] = self.token_ids.shape[0]
        if len(set(lengths.values())) != 1:
            raise DataError(
                f"{where}: TokenStats arrays have different lengths {lengths}; the model plugin "
                "must emit one entry per scored token in every field (harness.tokenstats.summarize)."
            )
        self.lp, self.max_other, self.mu, self.var = arrays
        self.n = int(self.lp.shape[0])
        self._order: np.ndarray | None = None
        self._sorted_cumsum: np.ndarray | None = None
        self._m: dict = {}

    @property
    def order(self) -> np.ndarray:
        """Token indices by increasing log-prob; stable, so ties resolve to the earliest token."""
        if self._order is None:
            self._order = np.argsort(self.lp, kind="stable")
        return self._order

    @property
    def sorted_cumsum(self) -> np.ndarray:
        """Cumulative sums of the log-probs in increasing order: the K lowest sum to [K-1]."""
        if self._sorted_cumsum is None:
            self._sorted_cumsum = np.cumsum(self.lp[self.order])
        return self._sorted_cumsum

    @property
    def entropy(self) -> np.ndarray:
        return -self.mu

    def mkpp(self, normalize: str, eps: float) -> np.ndarray:
        """Min-K%++ token scores m_i = (lp_i - mu_i) / scale_i (attacks.md §4.5).

        The variance is the model's centred one (``TokenStats.var_logprob``), clipped at 0 only
        against a plugin that emits a negative one.
        """
        key = (normalize, eps)
        if key not in self._m:
            var = np.maximum(self.var, 0.0)
            scale = var + eps if normalize == "variance" else np.sqrt(var + eps)
            with np.errstate(divide="ignore", invalid="ignore"):
                self._m[key] = (self.lp - self.mu) / scale
        return self._m[key]


def _prepared(ctx: BatchContext, output: str) -> list[_Tokens]:
    def build():
        stats = ctx.output(output)
        if len(stats) != len(ctx):
            raise DataError(
                f"model output '{output}' holds {len(stats)} TokenStats for a batch of {len(ctx)} "
                "samples; the model plugin must return exactly one per sample, in batch order."
            )
        return [_Tokens(ts, f"'{output}' sample {s.id!r}") for ts, s in zip(stats, ctx.samples)]

    return ctx.shared((_PREPARED_KEY, output), build)


# --------------------------------------------------------------------------------------------
# Formulas (one sample each; grids vectorised)


def _ks(fracs: Sequence[float], n: int) -> np.ndarray:
    """K = int(k * N) per grid value, exactly IAR's Python truncation."""
    return np.array([int(k * n) for k in fracs], dtype=np.int64)


def mean_of_k_lowest(sorted_cumsum: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """Mean of the K smallest values for every K, from the cumulative sum of the sorted values;
    NaN where K = 0."""
    out = np.full(ks.shape, np.nan)
    ok = ks > 0
    out[ok] = sorted_cumsum[ks[ok] - 1] / ks[ok]
    return out


def loss_feature(t: _Tokens) -> float:
    """attacks.md §4.1: -mean lp."""
    return -float(np.mean(t.lp)) if t.n else math.nan


def zlib_length(token_ids: np.ndarray) -> int:
    """Compressed length of ``str(list_of_ids)`` (Python ints, e.g. "[3, 17, 5]"), default zlib
    level, as IAR renders its token lists; multi-codebook ids are already flattened time-major."""
    ids = np.asarray(token_ids).reshape(-1)
    if not np.issubdtype(ids.dtype, np.integer):
        ids = ids.astype(np.int64)          # 5.0 would render as "5.0"
    text = str(ids.tolist())
    return len(zlib.compress(text.encode("utf-8")))


def zlib_feature(t: _Tokens) -> float:
    """attacks.md §4.2: (-mean lp) / zlib length of the token-id string."""
    if not t.n:
        return math.nan
    return loss_feature(t) / zlib_length(t.token_ids)


def hinge_feature(t: _Tokens) -> float:
    """attacks.md §4.3: -mean (lp - max_other). The log-prob margin equals the logit margin because
    both log-probs share the position's normaliser."""
    return -float(np.mean(t.lp - t.max_other)) if t.n else math.nan


def min_k_features(t: _Tokens, fracs: Sequence[float]) -> np.ndarray:
    """attacks.md §4.4: mean of the K largest -lp = -(mean of the K lowest lp)."""
    if not t.n:
        return np.full(len(fracs), np.nan)
    return -mean_of_k_lowest(t.sorted_cumsum, _ks(fracs, t.n))


def min_k_pp_features(t: _Tokens, fracs: Sequence[float], normalize: str, eps: float) -> np.ndarray:
    """attacks.md §4.5: mean of the K largest -m_i."""
    if not t.n:
        return np.full(len(fracs), np.nan)
    m = t.mkpp(normalize, eps)
    if not np.all(np.isfinite(m)):
        # a zero-variance position with eps = 0: the whole sample is undefined
        return np.full(len(fracs), np.nan)
    return -mean_of_k_lowest(np.cumsum(np.sort(m)), _ks(fracs, t.n))


def surp_intended_features(t: _Tokens, fracs: Sequence[float], entropies: Sequence[float],
                           empty_value: float) -> np.ndarray:
    """Reference SURP: mean lp over the tokens that are both among the K lowest-lp tokens and have
    entropy < max_entropy; k-major, entropy-minor. ``empty_value`` where that set is empty."""
    out = np.full((len(fracs), len(entropies)), empty_value, dtype=np.float64)
    if not t.n:
        return np.full(out.size, np.nan)
    h = np.asarray(entropies, dtype=np.float64)
    low_entropy = t.entropy[None, :] < h[:, None]                         # [H, N]
    for i, K in enumerate(_ks(fracs, t.n)):
        lowest = np.zeros(t.n, dtype=bool)
        lowest[t.order[:K]] = True
        sel = low_entropy & lowest[None, :]
        count = sel.sum(1)
        total = (sel * t.lp[None, :]).sum(1)
        ok = count > 0
        out[i, ok] = total[ok] / count[ok]
    return out.reshape(-1)


def surp_iar_code_features(t: _Tokens, fracs: Sequence[float], entropies: Sequence[float]
                           ) -> np.ndarray:
    """SURP as coded in IAR's extractor: [mean variants (k-major, entropy-minor), then count
    variants]. ``bound`` is the max of the top-K of -lp, i.e. -min(lp) >= 0 for any K >= 1, so
    ``lp_i < bound`` holds for every token with lp_i < 0 and the k grid has no effect
    (attacks.md §9 item 11); IAR crashes on K = 0, here it is NaN."""
    nk, nh = len(fracs), len(entropies)
    mean = np.full((nk, nh), np.nan)
    count = np.full((nk, nh), np.nan)
    if t.n:
        h = np.asarray(entropies, dtype=np.float64)
        low_entropy = t.entropy[None, :] < h[:, None]                     # [H, N]
        neg_sorted = -t.lp[t.order]                                       # decreasing -lp
        for i, K in enumerate(_ks(fracs, t.n)):
            if K == 0:
                continue
            bound = np.max(neg_sorted[:K])                                # = max of top-K of -lp
            mask = low_entropy & (t.lp < bound)[None, :]
            mean[i] = -(mask * t.lp[None, :]).sum(1) / np.maximum(mask.sum(1), 1e-6)
            count[i] = -mask.mean(1)
    return np.concatenate([mean.reshape(-1), count.reshape(-1)])


def below_mean(x: np.ndarray) -> float:
    return float(np.mean(x < np.mean(x)))


def below_running_mean(x: np.ndarray) -> float:
    """Fraction of positions below the running mean of positions 0..i (i included)."""
    running = np.cumsum(x) / np.arange(1, x.shape[0] + 1)
    return float(np.mean(x < running))


def ols_slope(y: np.ndarray) -> float:
    """OLS slope of y against positions 0..N-1; NaN for N < 2."""
    n = y.shape[0]
    if n < 2:
        return math.nan
    x = np.arange(n, dtype=np.float64)
    xc = x - x.mean()
    return float(np.sum(xc * (y - y.mean())) / np.sum(xc * xc))


def camia_features(t: _Tokens, normalize: str, eps: float) -> np.ndarray:
    """attacks.md §4.7 in IAR's order and stored signs (3 and 4 negated)."""
    if not t.n:
        return np.full(5, np.nan)
    m = t.mkpp(normalize, eps)
    m_ok = bool(np.all(np.isfinite(m)))
    return np.array([
        below_mean(t.lp),
        below_mean(m) if m_ok else math.nan,
        -below_running_mean(t.lp),
        -below_running_mean(m) if m_ok else math.nan,
        ols_slope(t.lp),
    ])


# --------------------------------------------------------------------------------------------
# Parameter checks


def _float_grid(value: Any, param: str, attack: str, lo: float, hi: float | None,
                lo_open: bool = True) -> tuple[float, ...]:
    """A non-empty list of distinct numbers in range (a single number is accepted as a list)."""
    items = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise ConfigError(f"attack '{attack}': '{param}' must be a number or a non-empty list of "
                          f"numbers, not {value!r}")
    out = []
    for v in items:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"attack '{attack}': '{param}' holds {v!r}; use finite numbers")
        below = v <= lo if lo_open else v < lo
        if below or (hi is not None and v > hi):
            rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"attack '{attack}': '{param}' value {v} is outside {rng}")
        out.append(float(v))
    labels = [_num(v) for v in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"attack '{attack}': '{param}' {list(out)} repeats a value (feature "
                          "names would collide); list each value once")
    return tuple(out)


def _choice(value: Any, param: str, attack: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"attack '{attack}': '{param}' must be one of "
                          f"{', '.join(repr(a) for a in allowed)}, not {value!r}")
    return value


def _eps(value: Any, attack: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
            or not math.isfinite(value):
        raise ConfigError(f"attack '{attack}': 'eps' must be a finite number >= 0, not {value!r}")
    return float(value)


def _num(v: float) -> str:
    """Compact grid label: 0.2 -> '0.2', 2.0 -> '2' (MLflow-safe: digits and '.')."""
    return f"{v:g}"


# --------------------------------------------------------------------------------------------
# Attacks


class _TokenStatsAttack(Attack):
    """Common plumbing: mode -> needed output, one row of features per sample, NaN hygiene."""

    family = "autoregressive"
    version = "1"
    #: each subclass sets its registered name here (feature names, groups, error messages); the
    #: runner may overwrite it per instance when it registers the class under another name
    registered_name = ""
    defaults: ClassVar[dict[str, Any]] = {"mode": "contrast"}
    param_docs: ClassVar[dict[str, str]] = {
        "mode": "contrast: log-probs with the caption minus with the null condition (needs a "
                "model trained with condition dropout) | conditional: plain conditional "
                "log-probs (models without a null condition, e.g. FIGARO)",
    }
    param_choices: ClassVar[dict[str, tuple]] = {"mode": tuple(MODES)}

    def validate(self) -> None:
        _choice(self.params["mode"], "mode", self._name(), tuple(MODES))

    def _name(self) -> str:
        return self.registered_name or type(self).__name__.lower()

    def needs(self) -> set[str]:
        return {MODES[self.params["mode"]]}

    # subclasses: list of (index or "", higher_is_member) and one row of values per sample
    def _indices(self) -> list[tuple[str, bool]]:
        raise NotImplementedError

    def _row(self, t: _Tokens) -> np.ndarray:
        raise NotImplementedError

    def feature_specs(self) -> list[FeatureSpec]:
        base = self._name()
        indices = self._indices()
        if len(indices) == 1 and indices[0][0] == "":
            specs = [FeatureSpec(base, indices[0][1])]
        else:
            specs = [FeatureSpec(f"{base}/{idx}", him, group=base, index=idx)
                     for idx, him in indices]
        for s in specs:
            if not _METRIC_NAME_RE.match(s.name):
                raise ConfigError(f"feature name {s.name!r} is not a valid MLflow metric name; "
                                  "register the attack under a name of letters, digits, '-', '_' "
                                  "or '.'")
        return specs

    def extract(self, ctx: BatchContext) -> dict[str, np.ndarray]:
        specs = self.feature_specs()
        (output,) = self.needs()
        tokens = _prepared(ctx, output)
        values = np.full((len(tokens), len(specs)), np.nan)
        for b, t in enumerate(tokens):
            values[b] = self._row(t)
        values[~np.isfinite(values)] = np.nan
        return {s.name: values[:, j].copy() for j, s in enumerate(specs)}


class Loss(_TokenStatsAttack):
    """Mean token loss -mean lp (attacks.md §4.1). A loss: lower = member."""

    registered_name = "loss"

    def _indices(self):
        return [("", False)]

    def _row(self, t):
        return np.array([loss_feature(t)])


class Zlib(_TokenStatsAttack):
    """Loss / zlib length of the token-id string (attacks.md §4.2). Lower = member.

    ``zlib_of="token-ids"`` (the only option): the attack sees TokenStats, not audio, so, like
    IAR, the "text" compressed is ``str(list_of_token_ids)``; multi-codebook ids are flattened
    time-major (time, then codebook), the order TokenStats holds them in.
    """

    registered_name = "zlib"
    defaults = {"mode": "contrast", "zlib_of": "token-ids"}
    param_docs = {"zlib_of": "what is zlib-compressed: the string of the sample's token ids "
                             "(the attack sees TokenStats, not audio)"}
    param_choices = {"zlib_of": ZLIB_OF}

    def validate(self):
        super().validate()
        _choice(self.params["zlib_of"], "zlib_of", self._name(), ZLIB_OF)

    def _indices(self):
        return [("", False)]

    def _row(self, t):
        return np.array([zlib_feature(t)])


class Hinge(_TokenStatsAttack):
    """IAR's stored Hinge = -mean margin, margin = lp - max_other (attacks.md §4.3).

    Sign follows IAR (negated margin, like a hinge loss): lower = member.
    """

    registered_name = "hinge"

    def _indices(self):
        return [("", False)]

    def _row(self, t):
        return np.array([hinge_feature(t)])


class MinK(_TokenStatsAttack):
    """Min-K%: mean -lp of the int(k*N) least likely tokens, one feature per k (attacks.md §4.4).
    A loss: lower = member. ``k``: fractions in (0, 1], default IAR's {0.1..0.5}."""

    registered_name = "min-k"
    defaults = {"mode": "contrast", "k": list(K_GRID)}

    def validate(self):
        super().validate()
        self.ks = _float_grid(self.params["k"], "k", self._name(), 0.0, 1.0)

    def _indices(self):
        return [(f"k{_num(k)}", False) for k in self.ks]

    def _row(self, t):
        return min_k_features(t, self.ks)


class MinKPlusPlus(_TokenStatsAttack):
    """Min-K%++: mean -m_i of the int(k*N) lowest token scores, one feature per k (§4.5).

    m_i = (lp_i - mu_i) / scale_i. ``normalize="variance"`` (default, IAR code):
    scale = sigma^2 + eps; ``"std"`` (the Min-K%++ paper and MIMIR): scale = sqrt(sigma^2 + eps).
    ``eps`` defaults to IAR's 1e-6; the reference std form has no epsilon, so ``eps=0`` with
    ``"std"`` reproduces it exactly (a zero-variance position then makes the sample NaN).
    Values are IAR's stored sign (-m): lower = member.
    """

    registered_name = "min-k-plus-plus"
    defaults = {"mode": "contrast", "k": list(K_GRID), "normalize": "variance", "eps": 1e-6}
    param_docs = {"k": _K_DOC,
                  "normalize": _NORMALIZE_DOC,
                  "eps": _EPS_DOC}
    param_choices = {"normalize": NORMALIZE}

    def validate(self):
        super().validate()
        name = self._name()
        self.ks = _float_grid(self.params["k"], "k", name, 0.0, 1.0)
        self.normalize = _choice(self.params["normalize"], "normalize", name, NORMALIZE)
        self.eps = _eps(self.params["eps"], name)

    def _indices(self):
        return [(f"k{_num(k)}", False) for k in self.ks]

    def _row(self, t):
        return min_k_pp_features(t, self.ks, self.normalize, self.eps)


class Surp(_TokenStatsAttack):
    """SURP (attacks.md §4.6), two named variants.

    ``variant="intended"`` (default; reference mia_llms_benchmark ``surp``): mean lp over tokens
    that are both among the int(k*N) lowest-lp tokens and have entropy < max_entropy. A mean
    log-prob: higher = member. When that set is empty (including K = 0) the reference stores
    NaN -> -100, i.e. "least member-like"; ``empty_value`` (default -100.0) sets that value, and
    ``empty_value: null`` emits NaN instead (the core then imputes). Grid defaults: k={0.2},
    max_entropy={2.0}. Features "surp/k<k>-h<H>".

    ``variant="iar-code"``: IAR's extractor as written, whose "k lowest" test is vacuous (§9 item
    11), so every k gives the same value. Emits "surp/mean-k<k>-h<H>" = mean loss over
    low-entropy tokens (0 when there are none, as coded) and "surp/count-k<k>-h<H>" = -(fraction
    of low-entropy tokens), IAR's stored signs, both lower = member. Grid defaults: IAR's
    k={0.1..0.5} x max_entropy={2,4,8,16} -> 40 features.

    Entropy is -mean_logprob of the mode's distribution (nats).
    """

    registered_name = "surp"
    defaults = {"mode": "contrast", "variant": "intended", "k": None, "max_entropy": None,
                "empty_value": SURP_EMPTY_VALUE}
    param_docs = {
        "variant": "intended: the reference SURP (mean lp over low-lp, low-entropy tokens; higher "
                   "= member) | iar-code: IAR's extractor as written (mean and count features)",
        "k": "fractions of the sequence length in (0, 1], a number or a list; null = the "
             "variant's grid (intended: 0.2; iar-code: 0.1..0.5)",
        "max_entropy": "entropy thresholds in nats (> 0), a number or a list; null = the "
                       "variant's grid (intended: 2; iar-code: 2, 4, 8, 16)",
        "empty_value": "value stored when no token qualifies (intended variant only): a finite "
                       "number, or null for NaN (the core then imputes)",
    }
    param_choices = {"variant": SURP_VARIANTS}

    def validate(self):
        super().validate()
        name = self._name()
        self.variant = _choice(self.params["variant"], "variant", name, SURP_VARIANTS)
        intended = self.variant == "intended"
        k = self.params["k"]
        h = self.params["max_entropy"]
        self.ks = _float_grid(k if k is not None else (SURP_INTENDED_K if intended else K_GRID),
                              "k", name, 0.0, 1.0)
        self.hs = _float_grid(h if h is not None else
                              (SURP_INTENDED_ENTROPY if intended else ENTROPY_GRID),
                              "max_entropy", name, 0.0, None)
        ev = self.params["empty_value"]
        if ev is None:
            self.empty_value = math.nan
        elif isinstance(ev, bool) or not isinstance(ev, (int, float)) or not math.isfinite(ev):
            raise ConfigError(f"attack '{name}': 'empty_value' must be a finite number or null "
                              f"(NaN), not {ev!r}")
        else:
            self.empty_value = float(ev)
        if not intended and self.params["empty_value"] != SURP_EMPTY_VALUE:
            raise ConfigError(f"attack '{name}': 'empty_value' applies to variant 'intended' "
                              "only; the 'iar-code' variant stores 0 as IAR does")

    def _indices(self):
        grid = [f"k{_num(k)}-h{_num(h)}" for k in self.ks for h in self.hs]
        if self.variant == "intended":
            return [(g, True) for g in grid]
        return [(f"mean-{g}", False) for g in grid] + [(f"count-{g}", False) for g in grid]

    def _row(self, t):
        if self.variant == "intended":
            return surp_intended_features(t, self.ks, self.hs, self.empty_value)
        return surp_iar_code_features(t, self.ks, self.hs)


class Camia(_TokenStatsAttack):
    """IAR's five parameter-free CAMIA sub-features (attacks.md §4.7), IAR's order and signs.

    The direction of each is empirical; declared here is the expected one for memorised samples,
    whose log-probs are mostly near 0 with a few low outliers (a left-skewed distribution, so few
    tokens fall below the mean) and rise along the sequence as the context identifies the sample:
    - ``below-mean``: fraction of lp below their mean. Lower = member.
    - ``below-mean-mkpp``: the same on Min-K%++ scores m_i. Lower = member.
    - ``below-prev-mean``: -(fraction of lp below the running mean, position i included), stored
      negated as IAR does. Higher = member. (IAR declares "lower"; its divide-by-max scaling then
      flipped it back for these always-negative values, attacks.md §5.1/§9 item 9.)
    - ``below-prev-mean-mkpp``: the same on m_i, stored negated. Higher = member.
    - ``slope``: OLS slope of lp against position, stored positive as IAR stores it. Its
      direction is the ``member_slope`` parameter (docs/discrepancies.md): ``lower`` (default)
      is the IAR code's declaration ("lower = member" for every CAMIA feature; its DI sums the
      slope unflipped that way); ``higher`` is the harness's earlier inference (log-probs of a
      memorised sample rise along the sequence), never measured on a reference model.
    ``normalize``/``eps`` choose m_i as in min-k-plus-plus (default IAR: variance + 1e-6).
    """

    registered_name = "camia"
    defaults = {"mode": "contrast", "normalize": "variance", "eps": 1e-6, "member_slope": "lower"}
    param_docs = {"normalize": "how the Min-K%++ scores m_i of the *-mkpp sub-features are "
                               "scaled: " + _NORMALIZE_DOC,
                  "eps": _EPS_DOC,
                  "member_slope": "direction of the slope sub-feature: lower = member (the IAR "
                                  "code's declaration) or higher (an untested inference); "
                                  "docs/discrepancies.md"}
    param_choices = {"normalize": NORMALIZE, "member_slope": ("lower", "higher")}
    SUB_FEATURES = (("below-mean", False), ("below-mean-mkpp", False),
                    ("below-prev-mean", True), ("below-prev-mean-mkpp", True), ("slope", False))
    SLOPE_DIRECTIONS = ("lower", "higher")

    def validate(self):
        super().validate()
        name = self._name()
        self.normalize = _choice(self.params["normalize"], "normalize", name, NORMALIZE)
        self.eps = _eps(self.params["eps"], name)
        _choice(self.params["member_slope"], "member_slope", name, self.SLOPE_DIRECTIONS)

    def _indices(self):
        higher = self.params["member_slope"] == "higher"
        return [(n, higher if n == "slope" else him) for n, him in self.SUB_FEATURES]

    def _row(self, t):
        return camia_features(t, self.normalize, self.eps)
