"""Registers ``symbolic-canary``: a tiny FIGARO trained here on known member MIDI files and scored
through the ``figaro`` plugin's own loader (official checkpoint format). Import-light."""

from harness import hookimpl


@hookimpl
def register_models(register):
    register("symbolic-canary", "plugins.models._symbolic_canary_impl:SymbolicCanary",
             family="autoregressive",
             description="FIGARO-architecture canary trained on CPU on folk-tune MIDI members "
                         "(cached; saved as an official-format .ckpt, scored by figaro's code)")
