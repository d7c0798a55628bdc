"""Registers ``stable-audio-open``: Stable Audio Open (diffusers StableAudioPipeline folders) as a
diffusion model on the noise-level contract. Import-light: the model code lives in
``_stable_audio_impl``."""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("stable-audio-open", "plugins.models._stable_audio_impl:StableAudioOpen",
             family="diffusion",
             description="Stable Audio Open 1.0 (diffusers folder or cached hub id, strict "
                         "loading): Oobleck VAE latents, T5 + timing condition from each "
                         "clip's duration, epsilon from the v-prediction on its cosine schedule")
