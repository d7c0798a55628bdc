"""Registers ``diffusion-canary``: a small AudioLDM-family latent diffusion model (diffusers UNet +
AutoencoderKL + a character-level CLIP text encoder) trained here on known member clips, cached in
diffusers format. Import-light."""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("diffusion-canary", "plugins.models._diffusion_canary_impl:DiffusionCanary",
             family="diffusion",
             description="text-conditioned latent diffusion canary trained on CPU on folk-tune "
                         "members (AudioLDM mel front-end; cached, saved with save_pretrained)")
