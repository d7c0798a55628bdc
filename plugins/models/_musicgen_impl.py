"""``musicgen``: MusicGen (audiocraft) on the shared audiocraft-LM scorer (``_audiocraft_lm``).

MusicGen is trained by the very solver AudioGen reuses (``MusicGenSolver``; models.md §1.3):
EnCodec tokens (32 kHz, hop 640 = 50 frames/s, 4 codebooks × 2048), delay pattern [0, 1, 2, 3],
one T5 (``t5-base``) ``description`` conditioner fused by cross-attention, condition dropout
(``classifier_free_guidance.training_dropout: 0.3`` in audiocraft's ``text2music.yaml``) whose
null is the zeroed T5 output. So the scoring is AudioGen's; what differs is set here:

* the loader class (``MusicGen.get_pretrained``) and the 30 s training segment
  (``segment_seconds``; audiocraft's MusicGen solver trains on 30 s crops). MusicCaps clips are
  10 s: with ``padding: exclude`` only their real frames are scored, so the longer window costs
  compute, not correctness (the LM is causal);
* the released checkpoints' ``compression_state_dict.bin`` is not a codec but a reference,
  ``{'pretrained': 'facebook/encodec_32khz'}`` (``export_pretrained_compression_model``);
  audiocraft then loads the Hugging Face ``EncodecModel`` of that name. ``encodec`` points that
  name at a local folder (offline use); a full ``best_state`` compression package loads as for
  AudioGen;
* only text-only checkpoints are scored: musicgen-melody's chroma ``self_wav`` conditioner (and
  any other non-text conditioner) is refused with ``UnsupportedConditioningError`` before
  anything is built (the scorer has no melody input to give it).
"""

from __future__ import annotations

from ._audiocraft_lm import AudiocraftLM


class MusicGenModel(AudiocraftLM):
    """MusicGen text-to-music checkpoints (small / medium / large, or your own export)."""

    label = "musicgen"
    loader = "MusicGen"
    hub_example = "facebook/musicgen-small"
    defaults = {**AudiocraftLM.defaults,
                "segment_seconds": 30.0,   # MusicGen's training segment (30 s crops)
                }
