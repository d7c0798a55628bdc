"""Registers ``figaro``: the official FIGARO checkpoints (symbolic music, REMI tokens), scored by
teacher forcing. Import-light: the model code lives in ``_figaro_impl``."""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("figaro", "plugins.models._figaro_impl:FigaroModel", family="autoregressive",
             description="FIGARO (figaro-expert.ckpt, or figaro.ckpt + vq-vae.ckpt) on MIDI: "
                         "REMI windows of 256 tokens, conditional token stats (no CFG)")
