"""``audiogen``: AudioGen (audiocraft) on the shared audiocraft-LM scorer (``_audiocraft_lm``):
its loader class and its 10 s training segment (models.md §1.3)."""

from __future__ import annotations

from ._audiocraft_lm import AudiocraftLM


class AudioGenModel(AudiocraftLM):
    """AudioGen (or any audiocraft text-to-audio LM checkpoint in the same format)."""

    label = "audiogen"
    loader = "AudioGen"
    hub_example = "facebook/audiogen-medium"
    defaults = {**AudiocraftLM.defaults,
                "segment_seconds": 10.0,   # AudioGen's training segment
                }
