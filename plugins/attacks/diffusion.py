"""Entry point of the diffusion attack family (CDI suite, attacks.md §3).

Import-light on purpose: listing plugins must not import torch; the classes live in
``_diffusion_impl`` and are imported only when an attack is instantiated.
"""

from harness import hookimpl

_IMPL = "plugins.attacks._diffusion_impl"

#: registered name -> (class, one-line description)
ATTACKS = {
    "denoising-loss": ("DenoisingLoss", "mean L2 denoising error at t=100 over 5 noise draws "
                                        "(Carlini et al.)"),
    "multiple-loss": ("MultipleLoss", "denoising error at t=0,100,...,900 with one shared noise "
                                      "draw (CDI)"),
    "pia": ("PIA", "proximal initialisation: eps_0 = f(z0, 0) re-used as the noise at t=200, "
                   "l_p distance (Kong et al.)"),
    "pian": ("PIAN", "PIA with eps_0 rescaled to a Gaussian-like magnitude (CDI / PIA-code "
                     "scaling)"),
    "gradient-masking": ("GradientMasking", "replace the top-20% |grad| latent entries with noise "
                                            "and score the reconstruction there (CDI, white-box)"),
    "noise-optimization": ("NoiseOptimization", "L-BFGS-B on an input perturbation at t=100: final "
                                                "loss and ||delta|| (CDI, white-box)"),
}


@hookimpl
def register_attacks(register):
    for name, (cls, description) in ATTACKS.items():
        register(name, f"{_IMPL}:{cls}", family="diffusion", description=description)
