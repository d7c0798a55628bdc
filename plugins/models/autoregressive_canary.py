"""Registers ``autoregressive-canary``: a small AudioGen-architecture LM over a small fixed-seed
EnCodec, trained here on known member clips, saved in AudioGen's official checkpoint format and
scored by the ``audiogen`` plugin's own loader and scoring. Import-light."""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("autoregressive-canary",
             "plugins.models._autoregressive_canary_impl:AutoregressiveCanary",
             family="autoregressive",
             description="AudioGen-architecture canary (delay pattern, T5 cross-attention, "
                         "condition dropout) trained on CPU on folk-tune members; cached as "
                         "state_dict.bin + compression_state_dict.bin, scored by audiogen's code")
