"""One scorer for audiocraft's text-to-audio LMs over EnCodec tokens (AudioGen, MusicGen):
teacher forcing, exactly as they were trained. ``AudiocraftLM`` holds everything; the
``audiogen`` and ``musicgen`` plugins only set their loader class and per-model defaults.

Why each step is the way it is (models.md §1.3–1.5; AudioGen's solver *is* MusicGen's):

* Loading goes through ``<Loader>.get_pretrained(checkpoint)`` — audiocraft's own loader, which
  rebuilds the LM and the EnCodec tokenizer from the ``xp.cfg`` YAML stored inside
  ``state_dict.bin`` / ``compression_state_dict.bin`` and loads ``best_state`` strictly. A local
  directory and a hub id take the same path; the canary is loaded by this code too.
* Identity: the two .bin files and every folder the load reads, by content
  (``harness.checkpoints``). A compression package that only *names* its codec (MusicGen's
  ``{'pretrained': 'facebook/encodec_32khz'}``) makes audiocraft load the codec from the
  ``encodec`` folder or, without it, from the HF cache: that cached snapshot is hashed too, so
  a re-downloaded or edited codec is a new cache key.
* The T5 text encoder is *not* in ``state_dict.bin`` (``T5Conditioner`` keeps it out when
  ``finetune=False``) and is loaded by name (``t5-large`` for AudioGen, ``t5-base`` for
  MusicGen) from the Hugging Face cache. The ``t5``
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
  ``lm.compute_predictions(codes, [], condition_tensors)`` call per batch (the solver's form),
  in ``eval()`` (all dropouts off), with ``keep_only_valid_steps=True`` as in the solver.
  A sample's score is its *unpadded* one: AudioGen's cross-attention has no key-padding mask,
  so audiocraft's zero-padding of short captions would change a sample's score with its batch
  neighbours; the batched call therefore masks the padded keys out of every cross-attention
  (``masked_cross_attention``), and conditioners that a mask cannot cover fall back to one call
  per caption length (``predictions``). The delay pattern's validity mask drops the last
  ``delay_k`` frames of codebook k; the NaN logits there are removed with ``torch.where``
  inside ``summarize``.
* Reduction: logits are permuted to time-major [B, T, K, V] and reduced at once by
  ``harness.tokenstats.summarize``; full-vocabulary logits never leave ``provide``. A sample's
  mean −logprob of codebook k over its valid positions equals the solver's per-codebook
  cross-entropy for a batch of one (tested).

An empty caption is passed as ``""``: T5 treats it as absent, so its conditional pass equals the
null pass (what AudioGen itself does with an empty description).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Sequence

from harness.contracts import (TOKEN_STATS_CONDITIONAL, TOKEN_STATS_CONTRAST,
                               AutoregressiveModel, BatchContext, Sample)
from harness.errors import ClipTooShortError, ConfigError, DataError, ModelLoadError
from harness import dtypes
from harness.segments import PADDING_POLICIES, WINDOW_POLICIES
from harness.tokenstats import CONTRAST_MODES

LM_FILE = "state_dict.bin"
COMPRESSION_FILE = "compression_state_dict.bin"
#: one EnCodec frame of AudioGen (hop 320 at 16 kHz): less audio than that has no token
MIN_CLIP_SECONDS = 0.02

_T5_LOCK = threading.RLock()
#: conditioners that turn the ``description`` text into the condition
TEXT_CONDITIONERS = ("t5", "lut")


class UnsupportedConditioningError(ModelLoadError):
    """The checkpoint conditions on something besides a text description (e.g. melody)."""


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
# the two .bin packages, read without running code


def read_packages(files: dict[str, str], what: str = "AudioGen") -> dict[str, dict]:
    """``{file name: package}`` of an audiocraft export, read through ``harness.safeload`` and
    checked for what ``audiocraft.models.loaders`` uses (``best_state``, ``xp.cfg``)."""
    from harness import safeload

    out = {}
    for name, path in files.items():
        pkg = safeload.load(path, what=f"{what} {name}", mmap=True)
        if not isinstance(pkg, dict):
            raise ModelLoadError(f"{what} {name} {path} holds a {type(pkg).__name__}, not an "
                                 "audiocraft export (a dict with 'best_state' and 'xp.cfg')")
        if name == COMPRESSION_FILE and "pretrained" in pkg:
            out[name] = pkg
            continue
        lacking = [k for k in ("best_state", "xp.cfg") if k not in pkg]
        if lacking:
            raise ModelLoadError(
                f"{what} {name} {path} lacks {', '.join(repr(k) for k in lacking)} (it has "
                f"{sorted(map(str, pkg))[:8]}): not an audiocraft export. Export a trained "
                "solver with audiocraft.utils.export (export_lm / export_encodec), which "
                "writes 'best_state' (the weights) and 'xp.cfg' (the config)")
        if not isinstance(pkg["best_state"], dict):
            raise ModelLoadError(f"{what} {name} {path}: 'best_state' must be a state dict, "
                                 f"got {type(pkg['best_state']).__name__}")
        out[name] = pkg
    return out


@contextlib.contextmanager
def packages_for_audiocraft(packages: dict[str, dict]):
    """While active, audiocraft's loaders take the packages read by :func:`read_packages`
    instead of unpickling the files themselves."""
    from audiocraft.models import loaders

    orig = loaders._get_state_dict

    def _get_state_dict(file_or_url_or_id, filename=None, device="cpu", cache_dir=None):
        if filename not in packages:
            raise ModelLoadError(f"audiocraft asked for '{filename}' of '{file_or_url_or_id}', "
                                 f"which is not among the files read ({', '.join(packages)})")
        return packages[filename]

    with _T5_LOCK:
        loaders._get_state_dict = _get_state_dict
        try:
            yield
        finally:
            loaders._get_state_dict = orig


def lm_config(package: dict, label: str) -> dict:
    """The merged Hydra config stored in an LM package's ``xp.cfg`` (a YAML string), as a dict."""
    from omegaconf import OmegaConf

    try:
        return OmegaConf.to_container(OmegaConf.create(package["xp.cfg"]), resolve=False)
    except Exception as exc:
        raise ModelLoadError(f"{label}: {LM_FILE}'s 'xp.cfg' is not an audiocraft YAML config "
                             f"({type(exc).__name__}: {exc})") from exc


@contextlib.contextmanager
def encodec_from(path: str | os.PathLike | None, package: dict, label: str):
    """While active, a compression package that only names a pretrained Hugging Face EnCodec
    (``{'pretrained': 'facebook/encodec_32khz'}``, what ``export_pretrained_compression_model``
    writes for MusicGen) is read from the local folder ``path`` instead of the hub.
    ``None``: no change (the name is resolved through the Hugging Face cache)."""
    if path is None or "pretrained" not in package:
        yield
        return
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ModelLoadError(f"{label}: encodec '{path}' is not a directory; point it at a local "
                             f"copy of the codec the checkpoint names ('{package['pretrained']}': "
                             "config.json and model weights)")
    from audiocraft.models import encodec as E

    orig = E.HFEncodecModel

    class _Local:
        @staticmethod
        def from_pretrained(name, *args, **kwargs):
            return orig.from_pretrained(path, *args, **kwargs)

    with _T5_LOCK:
        E.HFEncodecModel = _Local
        try:
            yield
        finally:
            E.HFEncodecModel = orig


# --------------------------------------------------------------------------------------------
# cross-attention with a key-padding mask (audiocraft has none)


def key_mask_supported(lm) -> bool:
    """Whether ``masked_cross_attention`` gives the unpadded computation for this LM: a single
    condition, fused by cross-attention only (with several, an empty one still contributes its
    null keys unpadded, which a padding mask cannot say), through audiocraft attention modules."""
    from audiocraft.modules.transformer import StreamingMultiheadAttention

    if list(lm.fuser.cond2fuse.values()) != ["cross"]:
        return False
    mods = [layer.cross_attention for layer in lm.transformer.layers]
    return all(isinstance(m, StreamingMultiheadAttention) and m.cross_attention
               and (not m.custom or m.kv_repeat == 1) for m in mods if m is not None)


def _masked_cross_forward(module, key_mask, query, key, value, key_padding_mask=None,
                          need_weights=False, attn_mask=None, average_attn_weights=True,
                          is_causal=False):
    """``StreamingMultiheadAttention.forward`` of audiocraft 1.3 for cross-attention (separate
    q / k / v projections of its packed ``in_proj``, optional q/k layer norm, float32 attention
    if configured, ``out_proj``; or its ``nn.MultiheadAttention`` when not ``custom``), with keys
    where ``key_mask`` [B, S] is False left out of the softmax."""
    import torch.nn.functional as F

    dtype = query.dtype
    if not module.custom:
        if module.attention_as_float32:
            query, key, value = (x.float() for x in (query, key, value))
        x, _ = module.mha(query, key, value, key_padding_mask=~key_mask, need_weights=False)
        return x.to(dtype), None
    dim = module.in_proj_weight.shape[0] // 3
    w, b = module.in_proj_weight, module.in_proj_bias
    bq, bk, bv = (None, None, None) if b is None else (b[:dim], b[dim:2 * dim], b[2 * dim:])
    q = F.linear(query, w[:dim], bq)
    k = F.linear(key, w[dim:2 * dim], bk)
    v = F.linear(value, w[2 * dim:], bv)
    if module.qk_layer_norm:
        q, k = module.q_layer_norm(q), module.k_layer_norm(k)
    q, k, v = (x.unflatten(-1, (module.num_heads, -1)).transpose(1, 2) for x in (q, k, v))
    if module.attention_as_float32:
        q, k, v = (x.float() for x in (q, k, v))
    x = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :],
                                       dropout_p=module.dropout if module.training else 0.0)
    return module.out_proj(x.to(dtype).transpose(1, 2).flatten(2)), None


def unpadded_key_mask(mask, null_keys: int):
    """The cross-attention key mask [B, S] (True = attend) under which a batch of zero-padded
    conditions computes each row as its condition alone would: the condition's own tokens, and
    for a row whose condition is empty (the null, or an empty caption; audiocraft gives it an
    all-zero mask) the ``null_keys`` keys the null condition has alone. Shared by the scorer and
    the canary's training step, so a canary is scored by the computation it was trained with."""
    key_mask = mask.bool().clone()
    key_mask[~key_mask.any(dim=1), :null_keys] = True
    return key_mask


def null_keys(lm, null_attributes) -> int:
    """Token length of the null condition (``null_attributes``: a one-element list of the
    conditioning attributes of an absent caption) encoded on its own: the keys a row with an
    empty condition attends to under :func:`unpadded_key_mask`."""
    import torch

    provider = lm.condition_provider
    with torch.no_grad():
        ((emb, _),) = provider(provider.tokenize(null_attributes)).values()
    return int(emb.shape[1])


@contextlib.contextmanager
def masked_cross_attention(lm, key_mask):
    """While active, every cross-attention of ``lm`` ignores the keys where ``key_mask``
    [B, S] (True = attend) is False, so a batch of zero-padded conditions scores each row as
    its unpadded condition would. Only for LMs where ``key_mask_supported`` holds."""
    import functools

    mods = [layer.cross_attention for layer in lm.transformer.layers
            if layer.cross_attention is not None]
    for m in mods:
        m.forward = functools.partial(_masked_cross_forward, m, key_mask)
    try:
        yield
    finally:
        for m in mods:
            del m.forward


# --------------------------------------------------------------------------------------------
# identity: content hashes (harness.checkpoints)


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


_CODEC_NAMES: dict[str, str | None] = {}


def pretrained_codec_name(compression_file: str, label: str) -> str | None:
    """The Hugging Face codec a compression package only names (``{'pretrained':
    'facebook/encodec_32khz'}``, MusicGen's export), or None when it holds the codec's weights.
    Memoised by the file's content hash, so identity() reads a package once."""
    from harness.checkpoints import file_hash

    digest = file_hash(compression_file)
    if digest not in _CODEC_NAMES:
        pkg = read_packages({COMPRESSION_FILE: compression_file}, label)[COMPRESSION_FILE]
        name = pkg.get("pretrained")
        _CODEC_NAMES[digest] = str(name) if name is not None else None
    return _CODEC_NAMES[digest]


def cached_codec_hash(name: str) -> str:
    """Content hash of the snapshot of hub id ``name`` that ``from_pretrained(name)`` reads from
    the Hugging Face cache (the ``main`` ref), or a note that it is not cached yet."""
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id=name, local_files_only=True)
    except (ImportError, OSError, ValueError):  # not cached (LocalEntryNotFoundError), bad id
        return f"{name}: not in the local Hugging Face cache"
    from harness.checkpoints import dir_hash

    return dir_hash(folder)


def _download_checkpoint_files(source: str, label: str = "audiogen") -> dict[str, str]:
    """Fetch a hub id's two files into the Hugging Face cache (what audiocraft would do)."""
    try:
        from huggingface_hub import hf_hub_download

        return {f: hf_hub_download(repo_id=source, filename=f, library_name="audiocraft")
                for f in (LM_FILE, COMPRESSION_FILE)}
    except Exception as exc:
        raise ModelLoadError(f"{label}: '{source}' is neither a local folder nor a hub id whose "
                             f"files could be fetched ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}). Give a folder holding "
                             "state_dict.bin and compression_state_dict.bin") from None


# --------------------------------------------------------------------------------------------
# the model plugin


class AudiocraftLM(AutoregressiveModel):
    """An audiocraft text-to-audio LM over EnCodec tokens (AudioGen, MusicGen), loaded by its
    audiocraft class's ``get_pretrained``. Subclasses give the per-model defaults (segment,
    hub id) and refuse checkpoints whose conditioning the scorer does not reproduce
    (``check_config``)."""

    #: name in messages when the plugin runs unregistered
    label: str = "audiogen"
    #: the class of ``audiocraft.models`` whose ``get_pretrained`` loads the checkpoint
    loader: str = "AudioGen"
    #: a hub id given as an example in messages
    hub_example: str = "facebook/audiogen-medium"

    #: 2: one batched forward with masked cross-attention (was: one per caption length)
    #: 3: padded frames excluded (``padding``), each clip encoded alone, ``windows``; the LM
    #: cast to ``dtype`` after loading
    version = "3"
    has_null_condition = True
    path_or_hub_params = ("checkpoint", "t5", "encodec")
    defaults = {
        "checkpoint": None,        # local dir with state_dict.bin + compression_state_dict.bin, or hub id
        "t5": None,                # local T5 folder used instead of the config's T5 name
        "encodec": None,           # local HF EnCodec folder for a codec the checkpoint names (MusicGen: facebook/encodec_32khz)
        "dtype": "float32",        # float32 | float16 | bfloat16 (autocast of the forward pass)
        "contrast": "logit",       # logit: softmax(l_c - l_u) (IAR) | prob-experimental
        "segment_seconds": 10.0,   # AudioGen's training segment
        "windows": "first",        # first | all: score consecutive windows of the whole clip
        "padding": "exclude",      # exclude | include: score the zero-padded frames of a short clip
    }
    param_choices = {"dtype": dtypes.NAMES, "contrast": CONTRAST_MODES,
                     "windows": WINDOW_POLICIES, "padding": PADDING_POLICIES}
    param_docs = {"segment_seconds": "seconds of audio per scored window, a positive number "
                                     "(the default is the model's training segment)"}

    def validate(self) -> None:
        p = self.params
        if p["checkpoint"] is None and not self._checkpoint_is_derived():
            raise ConfigError(f"{self._label}: 'checkpoint' is required: a local directory holding "
                              "state_dict.bin and compression_state_dict.bin, or a hub id "
                              f"such as {self.hub_example} already in the HF cache")
        from harness.dtypes import check

        check(p["dtype"], self._label)
        if p["contrast"] not in CONTRAST_MODES:
            raise ConfigError(f"{self._label}: contrast must be one of {CONTRAST_MODES}, "
                              f"got {p['contrast']!r}")
        s = p["segment_seconds"]
        if isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0:
            raise ConfigError(f"{self._label}: segment_seconds must be a positive number, got {s!r}")
        from harness.segments import check_policy

        check_policy(p["windows"], p["padding"], self._label)
        self._model = None
        self._null_len: int | None = None

    @property
    def _label(self) -> str:
        return self.registered_name or self.label

    def check_config(self, cfg: dict) -> None:
        """Refuse, before anything is built, a checkpoint whose conditioning this scorer would
        not reproduce: it passes one text ``description`` per clip (and None for the null), so
        any other conditioner (MusicGen-melody's chroma ``self_wav``, style or CLAP audio
        conditioners) would be scored with its input missing."""
        conds = dict(cfg.get("conditioners") or {})
        conds.pop("args", None)  # the provider's own options (audiocraft's builder pops them too)
        other = {name: (c or {}).get("model") for name, c in conds.items()
                 if name != "description" or (c or {}).get("model") not in TEXT_CONDITIONERS}
        if other:
            what = ", ".join(f"{n} ({m})" for n, m in sorted(other.items()))
            melody = " (melody conditioning)" if "self_wav" in other else ""
            raise UnsupportedConditioningError(
                f"{self._label}: the checkpoint conditions on {what}{melody}; this plugin scores "
                "text-only checkpoints (one T5 or LUT 'description' conditioner, e.g. "
                f"{self.hub_example}). Use a text-only checkpoint of the model")

    # -- hooks the canary overrides ---------------------------------------------------------------

    def _checkpoint_is_derived(self) -> bool:
        return False

    def checkpoint_source(self) -> str:
        """What the loader's ``get_pretrained`` receives."""
        return str(self.params["checkpoint"])

    def t5_source(self) -> str | None:
        return self.params["t5"]

    def encodec_source(self) -> str | None:
        """Local folder of the pretrained codec a compression package names (None: the HF
        cache); the canary writes its codec into its checkpoint and has no such parameter."""
        return self.params.get("encodec")

    # -- loading --------------------------------------------------------------------------------

    def identity(self) -> dict:
        from harness.checkpoints import dir_hash, file_hash

        source = self.checkpoint_source()
        files = _resolve_checkpoint_files(source)
        # a local folder is named by its contents only (a copy, or a copied cache holding a
        # canary, keeps its identity); a hub id by its name and, once cached, its contents
        ident: dict = {} if os.path.isdir(source) else {"checkpoint": source}
        if files is None:
            ident["files"] = "not in the local Hugging Face cache"
        else:
            ident["files"] = {name: file_hash(path) if os.path.isfile(path) else "missing"
                              for name, path in files.items()}
        t5 = self.t5_source()
        ident["t5"] = dir_hash(t5) if t5 else "name from the checkpoint config (HF cache)"
        if self.encodec_source():
            ident["encodec"] = dir_hash(self.encodec_source())
        elif files is not None and os.path.isfile(files[COMPRESSION_FILE]):
            # a package that only names its codec: the weights come from the HF cache
            codec = pretrained_codec_name(files[COMPRESSION_FILE], self._label)
            if codec is not None:
                ident["encodec"] = cached_codec_hash(codec)
        ident["segment_seconds"] = float(self.params["segment_seconds"])
        # what the LM really runs in (cast after load, whatever audiocraft's loader chose)
        ident["lm_dtype"] = self.params["dtype"]
        ident["windows"] = self.params["windows"]
        ident["padding"] = self.params["padding"]
        return ident

    def load(self):
        """The audiocraft model object (compression model + LM), loaded once."""
        if self._model is not None:
            return self._model
        source = self.checkpoint_source()
        if os.path.isdir(source):
            missing = [f for f in (LM_FILE, COMPRESSION_FILE)
                       if not os.path.isfile(os.path.join(source, f))]
            if missing:
                raise ModelLoadError(f"{self._label}: '{source}' lacks {', '.join(missing)}; an "
                                     f"{self.loader} checkpoint folder holds state_dict.bin and "
                                     "compression_state_dict.bin (as on the hub)")
        elif os.path.exists(source):
            raise ModelLoadError(f"{self._label}: checkpoint '{source}' is a file; give the folder "
                                 "that holds state_dict.bin and compression_state_dict.bin")
        try:
            import audiocraft.models
        except ImportError as exc:
            raise ModelLoadError(f"{self._label} needs audiocraft (pip install --no-deps "
                                 f"audiocraft==1.3.0 plus its runtime deps): {exc}") from exc
        files = _resolve_checkpoint_files(source)
        if files is None:
            files = _download_checkpoint_files(source, self._label)
        packages = read_packages(files, self.loader)
        self.check_config(lm_config(packages[LM_FILE], self._label))
        try:
            with t5_from(self.t5_source()), packages_for_audiocraft(packages), \
                    encodec_from(self.encodec_source(), packages[COMPRESSION_FILE], self._label):
                model = getattr(audiocraft.models, self.loader).get_pretrained(
                    source, device=self.device)
        except ModelLoadError:
            raise
        except Exception as exc:
            hint = ""
            if "t5" in str(exc).lower() or "offline" in str(exc).lower() or \
                    "huggingface" in type(exc).__module__:
                hint = (" If the T5 text encoder is not in the HF cache, set the model param "
                        "t5: /path/to/<the T5 named in the checkpoint> (a local copy of "
                        "the hub folder).")
            raise ModelLoadError(f"{self._label}: cannot load '{source}' with "
                                 f"{self.loader}.get_pretrained: {type(exc).__name__}: {exc}.{hint}"
                                 ) from exc
        self._cast_lm(model, source)
        model.lm.eval()
        model.compression_model.eval()
        self._model = model
        return model

    def _cast_lm(self, model, source: str) -> None:
        """Run the LM end to end in the suite's dtype. audiocraft's ``load_lm_model`` builds the
        LM with ``cfg.dtype='float16'`` on any non-CPU device: the transformer becomes fp16
        (its checkpoint weights rounded on load) while embeddings, output heads and the
        condition provider stay fp32, so a forward pass without audiocraft's autocast fails
        with a dtype mismatch. The whole LM is cast to ``dtype``; if the load had narrowed any
        weight below it, the checkpoint's ``best_state`` is loaded again so the weights are
        the checkpoint's, not their fp16 rounding. The codec stays float32, as audiocraft
        runs it."""
        import torch

        from harness.dtypes import module_dtypes, torch_dtype

        want = torch_dtype(self.params["dtype"])
        have = module_dtypes(model.lm)
        if have == {self.params["dtype"]}:
            return
        narrowed = any(torch.finfo(getattr(torch, d)).bits < torch.finfo(want).bits
                       or (d == "float16" and want == torch.bfloat16) for d in have)
        model.lm.to(want)
        if narrowed:
            from audiocraft.models.loaders import load_lm_model_ckpt

            state = load_lm_model_ckpt(source)["best_state"]
            model.lm.load_state_dict(state)
        got = module_dtypes(model.lm)
        if got != {self.params["dtype"]}:
            raise ModelLoadError(f"{self._label}: could not run the LM in {self.params['dtype']}: its "
                                 f"tensors are {sorted(got)} after the cast")

    # -- inputs -----------------------------------------------------------------------------------

    def scoring_windows(self, sample: Sample):
        from harness import segments

        return segments.plan(sample, float(self.params["segment_seconds"]),
                             self.params["windows"], MIN_CLIP_SECONDS)

    def read_window(self, path: str, start: float = 0.0, seconds: float | None = None):
        """([channels, samples] at the tokenizer's rate and channel count, exactly
        ``segment_seconds`` long; how many of those samples are audio, the rest being the
        right zero-padding): audiocraft's audio_read + convert_audio + pad, from ``start``."""
        import torch.nn.functional as F
        from audiocraft.data.audio import audio_read
        from audiocraft.data.audio_utils import convert_audio

        model = self.load()
        sr, ch = int(model.sample_rate), int(model.audio_channels)
        length = float(self.params["segment_seconds"])
        seconds = length if seconds is None else min(float(seconds), length)
        try:
            wav, file_sr = audio_read(path, float(start), seconds, pad=False)
        except Exception as exc:
            raise DataError(f"{self._label}: cannot read audio '{path}': {type(exc).__name__}: "
                            f"{exc}") from exc
        if wav.numel() == 0:
            raise ClipTooShortError(f"{self._label}: audio file '{path}' has no samples from "
                                    f"{start:g} s")
        wav = convert_audio(wav, file_sr, sr, ch)
        target = int(length * sr)
        wav = wav[..., :min(target, int(round(seconds * sr)))]
        return F.pad(wav, (0, target - wav.shape[-1])), int(wav.shape[-1])

    def read_audio(self, path: str):
        """The first window of ``path``, zero-padded to ``segment_seconds``."""
        return self.read_window(path)[0]

    def tokens(self, samples: Sequence[Sample]):
        """EnCodec codes [B, K, T] of the samples' first windows (``scoring_windows``)."""
        rows = [(s, self.scoring_windows(s)[0]) for s in samples]
        return self._encode_windows(rows)[0]

    def _encode_windows(self, rows):
        """Codes [R, K, T] and valid frames [R] of (sample, window) rows. Each window is encoded
        on its own: the codec's output must not depend on which clips share a batch (a 1e-7
        latent difference flips RVQ codes, so batched encoding made features depend on
        ``batch_size``, which is not in the cache key)."""
        import torch

        model = self.load()
        comp = model.compression_model
        hop = int(round(model.sample_rate / comp.frame_rate))
        codes, valid = [], []
        with torch.no_grad():
            for s, w in rows:
                wav, n = self.read_window(s.path, w.start, w.seconds)
                c, scale = comp.encode(wav[None].to(self.device))
                if scale is not None:
                    raise ModelLoadError(f"{self._label}: the compression model renormalises its "
                                         "input (scale is not None); its EnCodec tokenizer must "
                                         "not")
                frames = n // hop
                if frames < 1:
                    raise ClipTooShortError(
                        f"{self._label}: sample '{s.id}' ('{s.path}') has {n} samples at "
                        f"{model.sample_rate} Hz from {w.start:g} s, less than one codec frame "
                        f"({hop} samples); remove it or give a longer clip")
                codes.append(c)
                valid.append(frames)
        return torch.cat(codes), valid

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
        """Teacher-forced logits, conditional rows and (optionally) null rows.

        A sample's score is defined *unpadded*: what the solver gives at batch size one and
        ``generate`` gives for one prompt. AudioGen's cross-attention takes no key-padding mask
        (models.md §1.4), so audiocraft's own batching (captions zero-padded to the longest)
        would move a short caption's scores with its batch neighbours. When the LM's only
        condition reaches it through cross-attention (AudioGen), the whole batch goes through
        ONE ``compute_predictions`` call with the padded keys masked out of every
        cross-attention (``masked_cross_attention``), which is the unpadded computation for each
        row. Otherwise samples whose conditions have the same token lengths share a call.

        Yields (indices, logits [m, K, T, card], mask [m, K, T]) with m = len(indices) or twice
        that (conditional rows first, then the null rows in the same order).
        """
        if key_mask_supported(self.load().lm):
            yield self._masked_predictions(codes, captions, with_null)
        else:
            yield from self._grouped_predictions(codes, captions, with_null)

    def _forward(self, lm, codes, tensors, key_mask=None):
        import torch

        from harness.dtypes import autocast

        masking = (masked_cross_attention(lm, key_mask) if key_mask is not None
                   else contextlib.nullcontext())
        # audiocraft's own pipeline (genmodel) autocasts the LM in reduced precision
        with torch.no_grad(), autocast(self.params["dtype"], self.device), masking:
            return lm.compute_predictions(codes, [], condition_tensors=tensors)

    def _masked_predictions(self, codes, captions, with_null):
        """One call for the batch: captions padded (T5 encodes a padded batch as it encodes each
        caption alone), padded keys masked. A row whose condition is empty (the null, or an
        empty caption) has an all-zero mask from audiocraft, yet unpadded it attends to the
        null condition's keys: it keeps as many keys as the null condition has alone."""
        import torch

        lm = self.load().lm
        provider = lm.condition_provider
        n = len(captions)
        with torch.no_grad():
            rows = list(captions) + [None]
            tensors = provider(provider.tokenize(self.condition_attributes(rows)))
            null_keys = self._null_keys()
        take = torch.tensor(list(range(n)) + ([n] * n if with_null else []), device=codes.device)
        tensors = {k: (emb[take], m[take]) for k, (emb, m) in tensors.items()}
        ((_, mask),) = tensors.values()
        out = self._forward(lm, torch.cat([codes, codes]) if with_null else codes, tensors,
                            unpadded_key_mask(mask, null_keys))
        return list(range(n)), out.logits, out.mask

    def _null_keys(self) -> int:
        """Token length of the null condition encoded on its own."""
        if self._null_len is None:
            self._null_len = null_keys(self.load().lm, self.condition_attributes([None]))
        return self._null_len

    def _grouped_predictions(self, codes, captions, with_null):
        """Fallback for conditioners the masked path does not cover: one call per group of
        samples whose conditions have the same token lengths, and one for all the null rows
        (the null condition alone, the same for every sample)."""
        import torch

        lm = self.load().lm
        null_out = None
        if with_null:
            null = self.condition_tensors([None])[0]
            n = len(captions)
            null_out = self._forward(lm, codes, {k: (e.expand(n, -1, -1), m.expand(n, -1))
                                                 for k, (e, m) in null.items()})
        conds = self.condition_tensors(captions)
        groups: dict[tuple, list[int]] = {}
        for i, c in enumerate(conds):
            key = tuple((name, int(emb.shape[1])) for name, (emb, _) in sorted(c.items()))
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            tensors = {name: (torch.cat([conds[i][name][0] for i in idx]),
                              torch.cat([conds[i][name][1] for i in idx]))
                       for name in conds[idx[0]]}
            out = self._forward(lm, codes[idx], tensors)
            logits, mask = out.logits, out.mask
            if null_out is not None:
                logits = torch.cat([logits, null_out.logits[idx]])
                mask = torch.cat([mask, null_out.mask[idx]])
            yield idx, logits, mask

    def provide(self, samples: Sequence[Sample], needs: set[str], ctx: BatchContext | None = None
                ) -> dict:
        from harness.tokenstats import concatenate, summarize

        unknown = set(needs) - self.outputs()
        if unknown:
            raise ConfigError(f"{self._label} cannot provide {sorted(unknown)}; it provides "
                              f"{sorted(self.outputs())}")
        if not samples or not needs:
            return {n: [] for n in needs}
        rows, owner = [], []
        for i, s in enumerate(samples):
            for w in self.scoring_windows(s):
                rows.append((s, w))
                owner.append(i)
        codes, valid = self._encode_windows(rows)
        exclude_padding = self.params["padding"] == "exclude"
        want_contrast = TOKEN_STATS_CONTRAST in needs
        per_row: dict = {n: [None] * len(rows) for n in needs}
        for idx, logits, mask in self.predictions(codes, [s.caption for s, _ in rows],
                                                  want_contrast):
            n = len(idx)
            # time-major: [n, K, T, V] -> [n, T, K, V]
            logits = logits.permute(0, 2, 1, 3)
            mask = mask.permute(0, 2, 1)[:n]
            if exclude_padding:
                import torch

                t = torch.arange(mask.shape[1], device=mask.device)
                lens = torch.tensor([valid[i] for i in idx], device=mask.device)
                mask = mask & (t[None, :] < lens[:, None])[..., None]
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
                    per_row[name][i] = st
        out: dict = {}
        for name, stats in per_row.items():
            parts: list[list] = [[] for _ in samples]
            for i, st in zip(owner, stats):
                parts[i].append(st)
            out[name] = [p[0] if len(p) == 1 else concatenate(p) for p in parts]
        return out
