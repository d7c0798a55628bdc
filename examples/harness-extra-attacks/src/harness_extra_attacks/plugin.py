"""The entry-point module: registration only. Import-light on purpose (no torch, no numpy):
`harness plugins` imports it to list what this package provides, and the classes are imported
only when a suite uses them (the "module:attr" references below)."""

from harness import hookimpl


@hookimpl
def register_attacks(register):
    register("top1-rate", "harness_extra_attacks.attacks:Top1Rate", family="autoregressive",
             description="fraction of tokens where the true token is the model's first choice")
    register("noise-cosine", "harness_extra_attacks.attacks:NoiseCosine", family="diffusion",
             description="cosine between predicted and true noise at one timestep")


@hookimpl
def register_aggregators(register):
    register("bonferroni-welch", "harness_extra_attacks.aggregators:BonferroniWelch",
             family="any", description="one-sided Welch t-test per feature, Bonferroni-combined "
                                       "(valid under any dependence between features)")
