"""``audiogen``: AudioGen (audiocraft) scored by teacher forcing, exactly as it was trained.

Why each step is the way it is (models.md §1.3–1.5):

* Loading goes through ``AudioGen.get_pretrained(checkpoint)`` — audiocraft's own loader, which
  rebuilds the LM and the EnCodec tokenizer from the ``xp.cfg`` YAML stored inside
  ``state_dict.bin`` / ``compression_state_dict.bin`` and loads ``best_state`` strictly. A local
  directory and a hub id take the same path; the canary is loaded by this code too.
* The T5 text encoder is *not* in ``state_dict.bin`` (``T5Conditioner`` keeps it out when
  ``finetune=False``) and is loaded by name (``t5-large``) from the Hugging Face cache. The ``t5``
  parameter points that name at a local directory instead (``t5_from``): audiocraft asserts the
  name is one of its fixed list, so the redirect patches the two ``from_pretrained`` calls of
  ``audiocraft.modules.conditioners`` for the duration of the load and checks ``d_model``.
* Audio: ``audio_read(path, 0, segment_seconds)`` then ``convert_audio`` (julius resampling,
  mono by channel mean) then zero right-padding to exactly ``segment_seconds`` — the dataset code
  of audiocraft. Deliberate difference: training seeks to a random offset
  (``rand * (duration - 10)``); we always take the *first* ``segment_seconds`` so scores are
  deterministic (for AudioCaps' 10 s clips the two coincide).
* Tokens: ``compression_model.encode`` ([B, K, T], ``scale`` must be None: renormalize off).
* Conditional and null-condition passes: ``ConditioningAttributes(text={'description': caption})``
  and ``text={'description': None}`` (what ``ClassifierFreeGuidanceDropout`` produces; T5 then
  gives an all-zero condition), encoded by the LM's own condition provider. Both go through ONE
  ``lm.compute_predictions(codes, [], condition_tensors)`` call (the solver's form), batched along
  the batch axis, in ``eval()`` (all dropouts off), with ``keep_only_valid_steps=True`` as in the
  solver. Captions are never padded: AudioGen's cross-attention has no key-padding mask, so
  padding would change a sample's score with its batch neighbours; samples whose captions have
  different token lengths go through separate calls (``predictions``). The delay pattern's validity mask drops the last ``delay_k`` frames of codebook k; the
  NaN logits there are removed with ``torch.where`` inside ``summarize``.
* Reduction: logits are permuted to time-major [B, T, K, V] and reduced at once by
  ``harness.tokenstats.summarize``; full-vocabulary logits never leave ``provide``. A sample's
  mean −logprob of codebook k over its valid positions equals the solver's per-codebook
  cross-entropy for a batch of one (tested).

An empty caption is passed as ``""``: T5 treats it as absent, so its conditional pass equals the
null pass (what AudioGen itself does with an empty description).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Sequence

from harness.contracts import (TOKEN_STATS_CONDITIONAL, TOKEN_STATS_CONTRAST,
                               AutoregressiveModel, BatchContext, Sample)
from harness.errors import ConfigError, DataError, ModelLoadError
from harness.tokenstats import CONTRAST_MODES

LM_FILE = "state_dict.bin"
COMPRESSION_FILE = "compression_state_dict.bin"
DTYPES = ("float32", "float16", "bfloat16")

_T5_LOCK = threading.RLock()


# --------------------------------------------------------------------------------------------
# T5 from a local directory


@contextlib.contextmanager
def t5_from(path: str | os.PathLike | None):
    """While active, audiocraft's ``T5Conditioner`` loads its tokenizer and encoder from ``path``
    whatever name the checkpoint's config gives (``t5-large`` for AudioGen). ``None``: no change
    (the name is resolved through the Hugging Face cache)."""
    if path is None:
        yield
        return
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ModelLoadError(f"t5: '{path}' is not a directory; point it at a local T5 folder "
                             "(config.json, model weights and tokenizer files, e.g. a copy of "
                             "the hub's t5-large)")
    from audiocraft.modules import conditioners as C

    orig_tok, orig_enc = C.T5Tokenizer, C.T5EncoderModel

    class _Tokenizer:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            return orig_tok.from_pretrained(path, *args, **kwargs)

    class _Encoder:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            model = orig_enc.from_pretrained(path, *args, **kwargs)
            want = C.T5Conditioner.MODELS_DIMS.get(name)
            if want is not None and model.config.d_model != want:
                raise ModelLoadError(
                    f"t5: the checkpoint's conditioner expects '{name}' (d_model {want}) but "
                    f"'{path}' has d_model {model.config.d_model}; point t5 at a {name} folder")
            return model

    with _T5_LOCK:
        C.T5Tokenizer, C.T5EncoderModel = _Tokenizer, _Encoder
        try:
            yield
        finally:
            C.T5Tokenizer, C.T5EncoderModel = orig_tok, orig_enc


# --------------------------------------------------------------------------------------------
# identity: content hashes, remembered per (path, size, mtime) so a 3.7 GB file is read once


def file_hash(path: str | os.PathLike) -> dict:
    """{"size", "blake2b"} of a file. The full content is hashed (two checkpoints of the same size
    must never share a feature cache); the result is memoised under the harness cache, keyed by
    the resolved path, size and mtime, so only the first call reads the file."""
    from harness import atomic
    from harness.paths import cache_dir

    p = Path(path).resolve()
    st = p.stat()
    key = hashlib.blake2b(f"{p}\x00{st.st_size}\x00{st.st_mtime_ns}".encode(),
                          digest_size=16).hexdigest()
    memo = cache_dir("file-hashes") / f"{key}.json"
    if memo.is_file():
        try:
            return json.loads(memo.read_text())
        except (OSError, ValueError):
            pass
    h = hashlib.blake2b(digest_size=20)
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    out = {"size": st.st_size, "blake2b": h.hexdigest()}
    atomic.write_json(memo, out)
    return out


def _resolve_checkpoint_files(source: str) -> dict[str, str] | None:
    """Local paths of the two .bin files of ``source`` (a directory, or a hub id already in the
    Hugging Face cache); None if a hub id is not cached."""
    if os.path.isdir(source):
        return {f: os.path.join(source, f) for f in (LM_FILE, COMPRESSION_FILE)}
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub is an audiocraft dependency
        return None
    out = {}
    for f in (LM_FILE, COMPRESSION_FILE):
        hit = try_to_load_from_cache(source, f)
        if not isinstance(hit, str):
            return None
        out[f] = hit
    return out


def _dir_hash(path: str) -> dict:
    files = sorted(p for p in Path(path).rglob("*") if p.is_file())
    return {str(p.relative_to(path)): file_hash(p) for p in files}


# --------------------------------------------------------------------------------------------
# the model plugin


class AudioGenModel(AutoregressiveModel):
    """AudioGen (or any audiocraft text-to-audio LM checkpoint in the same format)."""

    version = "1"
    has_null_condition = True
    defaults = {
        "checkpoint": None,        # local dir with state_dict.bin + compression_state_dict.bin, or hub id
        "t5": None,                # local T5 folder used instead of the config's T5 name
        "dtype": "float32",        # float32 | float16 | bfloat16 (autocast of the forward pass)
        "contrast": "logit",       # logit: softmax(l_c - l_u) (IAR) | prob (see tokenstats)
        "segment_seconds": 10.0,   # AudioGen's training segment
    }

    def validate(self) -> None:
        p = self.params
        if p["checkpoint"] is None and not self._checkpoint_is_derived():
            raise ConfigError("audiogen: 'checkpoint' is required: a local directory holding "
                              "state_dict.bin and compression_state_dict.bin, or a hub id "
                              "such as facebook/audiogen-medium already in the HF cache")
        if p["dtype"] not in DTYPES:
            raise ConfigError(f"audiogen: dtype must be one of {DTYPES}, got {p['dtype']!r}")
        if p["contrast"] not in CONTRAST_MODES:
            raise ConfigError(f"audiogen: contrast must be one of {CONTRAST_MODES}, "
                              f"got {p['contrast']!r}")
        s = p["segment_seconds"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0:
            raise ConfigError(f"audiogen: segment_seconds must be a positive number, got {s!r}")
        self._model = None

    # -- hooks the canary overrides ---------------------------------------------------------------

    def _checkpoint_is_derived(self) -> bool:
        return False

    def checkpoint_source(self) -> str:
        """What ``AudioGen.get_pretrained`` receives."""
        return str(self.params["checkpoint"])

    def t5_source(self) -> str | None:
        return self.params["t5"]

    # -- loading --------------------------------------------------------------------------------

    def identity(self) -> dict:
        source = self.checkpoint_source()
        files = _resolve_checkpoint_files(source)
        ident: dict = {"checkpoint": source if not os.path.isdir(source)
                       else str(Path(source).resolve())}
        if files is None:
            ident["files"] = "not in the local Hugging Face cache"
        else:
            ident["files"] = {name: file_hash(path) if os.path.isfile(path) else "missing"
                              for name, path in files.items()}
        t5 = self.t5_source()
        ident["t5"] = _dir_hash(t5) if t5 else "name from the checkpoint config (HF cache)"
        ident["segment_seconds"] = float(self.params["segment_seconds"])
        return ident

    def load(self):
        """The audiocraft ``AudioGen`` object (compression model + LM), loaded once."""
        if self._model is not None:
            return self._model
        source = self.checkpoint_source()
        if os.path.isdir(source):
            missing = [f for f in (LM_FILE, COMPRESSION_FILE)
                       if not os.path.isfile(os.path.join(source, f))]
            if missing:
                raise ModelLoadError(f"audiogen: '{source}' lacks {', '.join(missing)}; an "
                                     "AudioGen checkpoint folder holds state_dict.bin and "
                                     "compression_state_dict.bin (as on the hub)")
        elif os.path.exists(source):
            raise ModelLoadError(f"audiogen: checkpoint '{source}' is a file; give the folder "
                                 "that holds state_dict.bin and compression_state_dict.bin")
        try:
            from audiocraft.models import AudioGen
        except ImportError as exc:
            raise ModelLoadError(f"audiogen needs audiocraft (pip install --no-deps "
                                 f"audiocraft==1.3.0 plus its runtime deps): {exc}") from exc
        try:
            with t5_from(self.t5_source()):
                model = AudioGen.get_pretrained(source, device=self.device)
        except ModelLoadError:
            raise
        except Exception as exc:
            hint = ""
            if "t5" in str(exc).lower() or "offline" in str(exc).lower() or \
                    "huggingface" in type(exc).__module__:
                hint = (" If the T5 text encoder is not in the HF cache, set the model param "
                        "t5: /path/to/t5-large (a local copy of the hub folder).")
            raise ModelLoadError(f"audiogen: cannot load '{source}' with "
                                 f"AudioGen.get_pretrained: {type(exc).__name__}: {exc}.{hint}"
                                 ) from exc
        model.lm.eval()
        model.compression_model.eval()
        self._model = model
        return model

    # -- inputs -----------------------------------------------------------------------------------

    def read_audio(self, path: str):
        """[channels, samples] at the tokenizer's rate and channel count, exactly
        ``segment_seconds`` long: audiocraft's audio_read + convert_audio + right zero-pad."""
        import torch.nn.functional as F
        from audiocraft.data.audio import audio_read
        from audiocraft.data.audio_utils import convert_audio

        model = self.load()
        sr, ch = int(model.sample_rate), int(model.audio_channels)
        seconds = float(self.params["segment_seconds"])
        try:
            wav, file_sr = audio_read(path, 0.0, seconds, pad=False)
        except Exception as exc:
            raise DataError(f"audiogen: cannot read audio '{path}': {type(exc).__name__}: "
                            f"{exc}") from exc
        if wav.numel() == 0:
            raise DataError(f"audiogen: audio file '{path}' has no samples")
        wav = convert_audio(wav, file_sr, sr, ch)
        target = int(seconds * sr)
        wav = wav[..., :target]
        return F.pad(wav, (0, target - wav.shape[-1]))

    def tokens(self, samples: Sequence[Sample]):
        """EnCodec codes [B, K, T] of the samples' audio."""
        import torch

        model = self.load()
        wav = torch.stack([self.read_audio(s.path) for s in samples]).to(self.device)
        with torch.no_grad():
            codes, scale = model.compression_model.encode(wav)
        if scale is not None:
            raise ModelLoadError("audiogen: the compression model renormalises its input "
                                 "(scale is not None); AudioGen's tokenizer must not")
        return codes

    @staticmethod
    def condition_attributes(captions: Sequence[str | None]):
        from audiocraft.modules.conditioners import ConditioningAttributes

        return [ConditioningAttributes(text={"description": c}) for c in captions]

    # -- scoring ----------------------------------------------------------------------------------

    def condition_tensors(self, captions: Sequence[str | None]) -> list[dict]:
        """Each caption's condition tensors on its own, unpadded: {name: (embeds [1, L, D],
        mask [1, L])}, through the LM's condition provider (tokenize, then encode)."""
        import torch

        provider = self.load().lm.condition_provider
        out = []
        with torch.no_grad():
            for c in captions:
                out.append(provider(provider.tokenize(self.condition_attributes([c]))))
        return out

    def predictions(self, codes, captions: Sequence[str | None], with_null: bool):
        """Teacher-forced logits, conditional rows and (optionally) null rows, yielded per group
        of samples whose conditions have the same token lengths.

        Why groups: AudioGen's cross-attention takes no key-padding mask (models.md §1.4), so
        padding a short caption to a longer one's length adds zero keys and changes its scores.
        A sample's score is therefore defined unpadded (what the solver gives at batch size one
        and ``generate`` gives for one prompt), and only equal-length conditions share a forward.
        The null condition is all zeros, and padding it with zeros changes nothing, so its rows
        join every group: one ``compute_predictions`` call per group scores both passes.

        Yields (indices, logits [n, K, T, card], mask [n, K, T]) with n = len(indices) or twice
        that (conditional rows first, then the null rows in the same order).
        """
        import torch

        lm = self.load().lm
        conds = self.condition_tensors(captions)
        null = self.condition_tensors([None])[0] if with_null else None
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(conds):
            key = tuple((name, int(emb.shape[1])) for name, (emb, _) in sorted(c.items()))
            groups.setdefault(key, []).append(i)
        dtype = getattr(torch, self.params["dtype"])
        dev = torch.device(self.device).type
        for idx in groups.values():
            tensors = {}
            for name in conds[idx[0]]:
                embs = [conds[i][name][0] for i in idx]
                masks = [conds[i][name][1] for i in idx]
                if with_null:
                    L = embs[0].shape[1]
                    n_emb, n_mask = null[name]
                    if n_emb.shape[1] > L:
                        raise ModelLoadError("audiogen: the null condition is longer than a "
                                             "caption's; this conditioner is not supported")
                    pad = L - n_emb.shape[1]
                    n_emb = torch.nn.functional.pad(n_emb, (0, 0, 0, pad))
                    n_mask = torch.nn.functional.pad(n_mask, (0, pad))
                    embs += [n_emb] * len(idx)
                    masks += [n_mask] * len(idx)
                tensors[name] = (torch.cat(embs, 0), torch.cat(masks, 0))
            sel = codes[idx]
            if with_null:
                sel = torch.cat([sel, sel], 0)
            with torch.no_grad(), torch.autocast(device_type=dev, dtype=dtype,
                                                 enabled=dtype != torch.float32):
                out = lm.compute_predictions(sel, [], condition_tensors=tensors)
            yield idx, out.logits, out.mask

    def provide(self, samples: Sequence[Sample], needs: set[str], ctx: BatchContext | None = None
                ) -> dict:
        from harness.tokenstats import summarize

        unknown = set(needs) - self.outputs()
        if unknown:
            raise ConfigError(f"audiogen cannot provide {sorted(unknown)}; it provides "
                              f"{sorted(self.outputs())}")
        if not samples or not needs:
            return {n: [] for n in needs}
        codes = self.tokens(samples)
        want_contrast = TOKEN_STATS_CONTRAST in needs
        out: dict = {n: [None] * len(samples) for n in needs}
        for idx, logits, mask in self.predictions(codes, [s.caption for s in samples],
                                                  want_contrast):
            n = len(idx)
            # time-major: [n, K, T, V] -> [n, T, K, V]
            logits = logits.permute(0, 2, 1, 3)
            mask = mask.permute(0, 2, 1)[:n]
            targets = codes[idx].permute(0, 2, 1)
            results = {}
            if TOKEN_STATS_CONDITIONAL in needs:
                results[TOKEN_STATS_CONDITIONAL] = summarize(logits[:n], targets, mask)
            if want_contrast:
                results[TOKEN_STATS_CONTRAST] = summarize(logits[:n], targets, mask,
                                                          null_logits=logits[n:],
                                                          contrast=self.params["contrast"])
            del logits
            for name, stats in results.items():
                for i, st in zip(idx, stats):
                    out[name][i] = st
        return out
