"""Entry point of the TANGO model plugin (the official declare-lab/tango files in a local folder).

Import-light on purpose: the class lives in ``_tango_impl`` and is imported only when used.
"""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("tango", "plugins.models._tango_impl:Tango", family="diffusion",
             description="TANGO text-to-audio LDM from the official main/vae/stft state dicts "
                         "(v-prediction converted to ε; FLAN-T5 tokenizer from a local folder)")
