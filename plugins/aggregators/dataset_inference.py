"""Entry point of the dataset-inference aggregators (attacks.md §6, §7; validity.md §1).

Import-light: the classes live in ``_dataset_inference_impl`` and are imported only when used.
"""

from harness import hookimpl

_IMPL = "plugins.aggregators._dataset_inference_impl"

#: registered name -> (class, family, one-line description); ``default=True`` marks the test a
#: family should use unless a suite asks otherwise (the ones that hold their nominal alpha)
AGGREGATORS = {
    "cdi": ("CDIHeldOut", "diffusion",
            "CDI as the paper describes it: LR scorer fitted on a control half, one-sided Welch "
            "t-test on the held-out half (holds its nominal alpha)"),
    "cdi-crossfit": ("CDICrossFit", "diffusion",
                     "CDI as the released code runs it: 5-fold cross-fitted LR, Welch on all "
                     "out-of-fold scores (over-rejects under the null; for reproduction only)"),
    "minmax-sum": ("MinMaxSum", "autoregressive",
                   "IAR: per-draw min-max scaling on pooled P and U, sum of features, "
                   "Welch t-test"),
}

DEFAULTS = {"cdi", "minmax-sum"}

#: shown beside the aggregator's results in reports and MLflow (tag ``caveat``); the rates are
#: measured by benchmarks/di_null.py (fresh i.i.d. draws, P and U identical, 12 correlated
#: features, 4,000 draws per cell) and by CDICrossFit's docstring (null control, 25-d Gaussians)
CAVEATS = {
    "cdi-crossfit": "reproduction of the reference code; over-rejects: null FPR 0.14-0.17 at "
                    "alpha 0.05 and 0.05-0.07 at alpha 0.01 (n 30-300, two-sided)",
}


@hookimpl
def register_aggregators(register):
    for name, (cls, family, description) in AGGREGATORS.items():
        register(name, f"{_IMPL}:{cls}", family=family, description=description,
                 default=name in DEFAULTS, caveat=CAVEATS.get(name, ""))
