"""Named errors. Every message says what is wrong and what to change, because the person reading it
is usually running a long job and needs to fix the input, not read a traceback."""

import difflib


class HarnessError(Exception):
    """Base class: the CLI prints these without a traceback."""


class ConfigError(HarnessError):
    """A suite or plugin parameter is invalid."""


class SuiteError(ConfigError):
    """A suite file is invalid; ``path`` is the dotted location of the bad key in the file."""

    def __init__(self, message: str, path: str = "", source: str = ""):
        self.path = path
        self.source = source
        where = f"{source}: " if source else ""
        at = f"at '{path}': " if path else ""
        super().__init__(f"{where}{at}{message}")


class UnknownNameError(ConfigError, KeyError):
    """A name that is not registered (plugin, parameter, feature...)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class DuplicatePluginError(HarnessError):
    """Two distributions registered the same plugin name."""


class PluginLoadError(HarnessError):
    """A plugin could not be imported or instantiated."""


class CacheMismatchError(HarnessError):
    """A cache entry's recorded inputs differ from the ones that produced its key."""


class ModelLoadError(HarnessError):
    """A checkpoint is missing, incomplete or not in the expected on-disk format."""


class DataError(HarnessError):
    """Input data (audio, MIDI, manifests) is missing or unreadable."""


class ClipTooShortError(DataError):
    """A clip (or its requested span) is shorter than the least audio a model can score."""


class MissingSampleError(DataError):
    """An id list (``include_ids`` / ``exclude_ids``) names samples the split does not have."""


class PluginContractError(HarnessError, AssertionError):
    """A plugin broke its contract (``harness.testing`` checks); the message lists what to fix.
    An AssertionError too, so pytest reports it as a test failure."""


def did_you_mean(kind: str, name: str, available) -> str:
    """lm-eval style: "Unknown attack 'x'. Did you mean 'y'? Available: a, b, c"."""
    available = sorted(available)
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    msg = f"Unknown {kind} '{name}'."
    if close:
        msg += " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
    msg += " Available: " + (", ".join(available) if available else "(none)")
    return msg


def unknown(kind: str, name: str, available) -> UnknownNameError:
    return UnknownNameError(did_you_mean(kind, name, available))
