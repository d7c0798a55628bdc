"""Registers ``audiogen``: AudioGen (audiocraft) checkpoints scored by teacher forcing with the
caption and with AudioGen's null condition in one batched pass. Import-light: the model code lives
in ``_audiogen_impl``."""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("audiogen", "plugins.models._audiogen_impl:AudioGenModel", family="autoregressive",
             description="AudioGen via AudioGen.get_pretrained (local dir or cached hub id; T5 "
                         "from a local folder or the HF cache): EnCodec tokens, delay pattern, "
                         "conditional and CFG-contrast token stats")
