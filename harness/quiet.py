"""The one place that silences known third-party noise, so the harness's own lines stay readable.

Why: a CPU demo run printed ~75 lines from libraries (xFormers' build-mismatch warning, diffusers'
"accelerate not found" and "kept in float32: []", ``weight_norm`` FutureWarnings, Hugging Face
"Loading weights" / "Writing model shards" bars, MLflow and alembic INFO lines) against ~30 of the
harness's own, hiding its warnings. None of them is actionable for an audit; each is listed below
with the reason it is safe to hide. ``harness -v ...`` installs nothing and shows everything.

Only *known* messages are filtered: warnings by message text, loggers by name and level (their
errors still print), progress bars through the libraries' own switches (environment variables
that are read at import, so this runs before any of them is imported; a value the user set is
kept).
"""

from __future__ import annotations

import logging
import os
import warnings

# environment switches the libraries read when imported (a user's own setting wins)
ENV = {
    # Hugging Face Hub / transformers progress bars ("Loading weights", "Writing model shards",
    # downloads): the harness shows its own progress per stage.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    # diffusers' and transformers' chatter at load time ("`accelerate` was not found", "modules
    # ... kept in float32: []"): advice for library users, not for an audit; errors remain.
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_VERBOSITY": "error",
    # MLflow's INFO lines (store migrations, "created experiment"): the harness prints the run id.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
}

# logger name -> lowest level still shown
LOGGERS = {
    # xFormers warns once that its C++/CUDA extensions don't match the installed torch; the
    # audiocraft models fall back to PyTorch attention, results are unchanged.
    "xformers": logging.ERROR,
    "diffusers": logging.ERROR,
    "transformers": logging.ERROR,
    "huggingface_hub": logging.ERROR,
    "mlflow": logging.WARNING,
    # MLflow's sqlite store runs alembic migrations on first use and logs each at INFO
    "alembic": logging.WARNING,
    # audiocraft logs model loading at INFO
    "audiocraft": logging.WARNING,
}

# (message regex, category): Python warnings hidden by text; the regex matches the message start
WARNINGS = [
    # torch.nn.utils.weight_norm, used by EnCodec / DAC inside audiocraft: deprecated in favour of
    # parametrizations.weight_norm, numerically the same.
    (r".*torch\.nn\.utils\.weight_norm` is deprecated", FutureWarning),
    # xFormers (when it warns through `warnings` rather than its logger)
    (r".*xFormers", UserWarning),
    (r"A matching Triton is not available", UserWarning),
    # MLflow's sqlite store configures its SQLAlchemy mappers with a deprecated loader option
    (r"The ``noload`` loader strategy is deprecated", DeprecationWarning),
]

_installed = False


def install(verbose: bool = False) -> None:
    """Hide the known noise (nothing when ``verbose``). Call before importing torch & co."""
    global _installed
    if verbose or _installed:
        return
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    for name, level in LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    for pattern, category in WARNINGS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    _installed = True
