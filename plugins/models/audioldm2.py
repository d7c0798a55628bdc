"""Entry point of the AudioLDM2 model plugin (diffusers-format checkpoints such as cvssp/audioldm2).

Import-light on purpose: listing plugins must not import torch/diffusers; the class lives in
``_audioldm2_impl`` and is imported only when the model is instantiated.
"""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("audioldm2", "plugins.models._audioldm2_impl:AudioLDM2", family="diffusion",
             description="AudioLDM2 text-to-audio LDM from a diffusers pipeline folder or hub id "
                         "(ε-prediction; trained or diffusers null condition)")
