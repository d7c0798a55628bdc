"""Registers ``musicgen``: MusicGen (audiocraft) text-only checkpoints, scored by the shared
audiocraft-LM code path (the ``audiogen`` plugin's). Import-light: the model code lives in
``_musicgen_impl``."""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("musicgen", "plugins.models._musicgen_impl:MusicGenModel", family="autoregressive",
             description="MusicGen via MusicGen.get_pretrained (local dir or cached hub id; T5 "
                         "and the named EnCodec from local folders or the HF cache): text-only "
                         "checkpoints, conditional and CFG-contrast token stats")
