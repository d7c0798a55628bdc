"""Entry point of the autoregressive attack family (IAR suite, attacks.md §4).

Import-light on purpose: listing plugins must not import numpy-heavy code paths; the classes live
in ``_autoregressive_impl`` and are imported only when an attack is instantiated.
"""

from harness import hookimpl

_IMPL = "plugins.attacks._autoregressive_impl"

#: registered name -> (class, one-line description)
ATTACKS = {
    "loss": ("Loss", "mean token cross-entropy under the chosen distribution (Yeom et al.)"),
    "zlib": ("Zlib", "loss divided by the zlib length of the token-id string (Carlini et al.)"),
    "hinge": ("Hinge", "negated mean margin between the true token and the best other token"),
    "min-k": ("MinK", "Min-K% over a k grid: mean loss of the k% least likely tokens (Shi et al.)"),
    "min-k-plus-plus": ("MinKPlusPlus", "Min-K%++ over a k grid: calibrated token scores "
                                        "(Zhang et al.); variance (IAR) or std normalisation"),
    "surp": ("Surp", "SURP: log-prob of surprising tokens the model is confident about "
                     "(Zade et al.); intended or IAR-coded variant"),
    "camia": ("Camia", "IAR's five parameter-free CAMIA sub-features (Chang et al.)"),
}


@hookimpl
def register_attacks(register):
    for name, (cls, description) in ATTACKS.items():
        register(name, f"{_IMPL}:{cls}", family="autoregressive", description=description)
