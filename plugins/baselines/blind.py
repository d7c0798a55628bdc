"""Entry point of the built-in model-free baseline (issue #10 item 4).

Import-light: the class lives in ``_blind_impl`` and is imported only when a run uses it.
"""

from harness import hookimpl


@hookimpl
def register_baselines(register):
    register("model-free", "plugins.baselines._blind_impl:ModelFree",
             description="audio (duration, loudness, spectral and MFCC statistics; MIDI note "
                         "statistics) and caption (length, hashed bag of words) features, no "
                         "model: what a classifier can tell apart without the model")
