"""Tiny AudioGen checkpoints in the official on-disk format, written offline.

What "official" means here (audiocraft ``utils/export.py``; models.md §1.1): a folder with
``state_dict.bin`` and ``compression_state_dict.bin``, each ``torch.save``d as
``{'xp.cfg': <YAML string>, 'best_state': <state_dict>, 'version': audiocraft.__version__,
'exported': True}``. The YAML has the keys audiocraft's builders read, with the *released
AudioGen's* values wherever size allows: delay pattern [0, 1, 2, 3], ``memory_efficient``,
pre-norm, no biases, gaussian init, a ``description`` T5 conditioner fused by cross-attention,
CFG dropout 0.1, 16 kHz mono EnCodec with hop 320 (50 frames/s) and 4 RVQ codebooks.

Size knobs differ (``dataset.segment_duration`` must exceed AudioGen's ``extend_stride`` of 2 s): dim 32, 2 layers, 16 bins per codebook, SEANet with 4 filters, and the T5
named in the config is ``t5-small`` (its conditioner asserts d_model 512) served from a tiny local
T5 folder (``write_tiny_t5``: 1 layer, d_model 512, 2 heads × 8, a character-level unigram
tokenizer) through the ``audiogen`` plugin's ``t5`` parameter. That exercises the real
``T5Conditioner`` (tokenize, zeroed null rows, output_proj), not a stand-in; a LUT conditioner
would not need T5 but would not be AudioGen's architecture.
"""

from __future__ import annotations

import string
from pathlib import Path

from tiny_parts import unigram_t5_tokenizer

CARD = 16
T5_NAME = "t5-small"


def tiny_t5_tokenizer():
    """A unigram T5Tokenizer (pad 0, eos 1, unk 2) over characters, so any caption tokenises."""
    return unigram_t5_tokenizer(string.ascii_lowercase + string.digits + ",./-'")


def write_tiny_t5(path, seed: int = 0, d_model: int = 512) -> Path:
    """A T5 encoder folder (config.json, weights, tokenizer files) that ``from_pretrained`` reads
    offline."""
    import torch
    from transformers import T5Config, T5EncoderModel

    path = Path(path)
    tok = tiny_t5_tokenizer()
    torch.manual_seed(seed)
    cfg = T5Config(vocab_size=len(tok), d_model=d_model, d_ff=32, d_kv=8, num_heads=2,
                   num_layers=1, feed_forward_proj="relu", pad_token_id=0, eos_token_id=1,
                   decoder_start_token_id=0)
    T5EncoderModel(cfg).save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


def xp_cfg(segment_duration: float = 3.0, dim: int = 32, num_layers: int = 2, card: int = CARD,
           conditioner: str = "t5", lm: dict | None = None, fuser: dict | None = None,
           sample_rate: int = 16000, t5_name: str = T5_NAME, cfg_dropout: float = 0.1,
           word_dropout: float = 0.0, extra_conditioners: dict | None = None) -> dict:
    """The merged Hydra config (as stored in ``xp.cfg``) of a tiny AudioGen; ``lm`` and
    ``fuser`` override keys of ``transformer_lm`` and ``fuser`` (other audiocraft LMs);
    ``sample_rate``, ``t5_name``, ``cfg_dropout`` and ``word_dropout`` give MusicGen's values
    (``musicgen_cfg``)."""
    if conditioner == "t5":
        cond = {"model": "t5", "t5": {"name": t5_name, "finetune": False,
                                      "word_dropout": word_dropout, "normalize_text": False}}
    else:  # no T5 at all: LUT over the whole caption, hashed (no spaCy needed)
        cond = {"model": "lut", "lut": {"n_bins": 64, "dim": 16, "tokenizer": "noop"}}
    return {
        "device": "cpu", "dtype": "float32", "sample_rate": sample_rate, "channels": 1,
        "dataset": {"segment_duration": segment_duration, "sample_rate": sample_rate,
                    "channels": 1},
        "compression_model": "encodec",
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": 16000,
                    "channels": 1, "causal": False, "renormalize": False},
        "seanet": {"dimension": 16, "channels": 1, "causal": False, "n_filters": 4,
                   "n_residual_layers": 1, "ratios": [8, 5, 4, 2], "activation": "ELU",
                   "activation_params": {"alpha": 1.0}, "norm": "weight_norm",
                   "norm_params": {}, "kernel_size": 7, "residual_kernel_size": 3,
                   "last_kernel_size": 7, "dilation_base": 2, "pad_mode": "constant",
                   "true_skip": True, "compress": 2, "lstm": 1, "disable_norm_outer_blocks": 0,
                   "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                               "final_activation_params": None},
                   "encoder": {}},
        "rvq": {"n_q": 4, "q_dropout": False, "bins": card, "decay": 0.99,
                "kmeans_init": False, "kmeans_iters": 50, "threshold_ema_dead_code": 2,
                "orthogonal_reg_weight": 0.0, "orthogonal_reg_active_codes_only": False},
        "no_quant": {},
        "lm_model": "transformer_lm",
        "codebooks_pattern": {"modeling": "delay",
                              "delay": {"delays": [0, 1, 2, 3], "flatten_first": 0,
                                        "empty_initial": 0}},
        "transformer_lm": {
            "dim": dim, "num_heads": 2, "num_layers": num_layers, "hidden_scale": 4, "n_q": 4,
            "card": card, "dropout": 0.0, "emb_lr": None, "activation": "gelu",
            "norm_first": True, "bias_ff": False, "bias_attn": False, "bias_proj": False,
            "past_context": None, "causal": True, "custom": False, "memory_efficient": True,
            "attention_as_float32": False, "layer_scale": None, "positional_embedding": "sin",
            "xpos": False, "checkpointing": "none", "weight_init": "gaussian",
            "depthwise_init": "current", "zero_bias_init": True, "norm": "layer_norm",
            "cross_attention": False, "qk_layer_norm": False, "qk_layer_norm_cross": False,
            "attention_dropout": None, "kv_repeat": 1, "two_step_cfg": False, **(lm or {})},
        "classifier_free_guidance": {"training_dropout": cfg_dropout, "inference_coef": 3.0},
        "attribute_dropout": {},
        "fuser": {"cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1,
                  "sum": [], "prepend": [], "cross": ["description"], "input_interpolate": [],
                  **(fuser or {})},
        "conditioners": {"description": cond, **(extra_conditioners or {})},
    }


def _exported(path, cfg: dict, t5_dir, seed: int, compression: bool):
    """The skeleton both writers share: build the compression model (if ``compression``) and
    the LM with audiocraft's builders from ``cfg`` under ``seed`` (in that order: one random
    stream draws both), spread the LM's zero-initialised biases/norms, and save the LM as
    ``export_lm`` does. Returns (folder, compression model or None, the package to save with
    it)."""
    import audiocraft
    import torch
    from audiocraft.models import builders
    from omegaconf import OmegaConf

    from plugins.models._audiocraft_lm import t5_from

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = OmegaConf.create(cfg)
    torch.manual_seed(seed)
    comp = builders.get_compression_model(cfg) if compression else None
    with t5_from(t5_dir):
        lm = builders.get_lm_model(cfg)
    with torch.no_grad():  # give the zero-initialised biases/norms some spread
        for name, p in lm.named_parameters():
            if "condition_provider" in name or "out_norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    package = {"xp.cfg": OmegaConf.to_yaml(cfg), "version": audiocraft.__version__,
               "exported": True}
    torch.save({"best_state": lm.state_dict(), **package}, path / "state_dict.bin")
    return path, comp, package


def write_tiny_audiogen(path, t5_dir=None, seed: int = 0, conditioner: str = "t5",
                        **cfg_kwargs) -> Path:
    """Build a tiny AudioGen with audiocraft's builders from ``xp_cfg`` and export it exactly as
    ``export_lm`` / ``export_encodec`` do. ``t5_dir`` is required for the T5 conditioner."""
    import torch

    path, comp, package = _exported(path, xp_cfg(conditioner=conditioner, **cfg_kwargs),
                                    t5_dir if conditioner == "t5" else None, seed,
                                    compression=True)
    torch.save({"best_state": comp.state_dict(), **package}, path / "compression_state_dict.bin")
    return path


# -- MusicGen ----------------------------------------------------------------------------------
#
# The released MusicGen folders (facebook/musicgen-{small,medium,large}) hold ``state_dict.bin``
# exported by ``export_lm`` and a ``compression_state_dict.bin`` written by
# ``export_pretrained_compression_model('facebook/encodec_32khz', ...)``: no weights, only
# ``{'pretrained': name, 'exported': True, 'version'}``; audiocraft then loads the Hugging Face
# ``EncodecModel`` of that name. The tiny fixture does the same, with the named codec served from
# a tiny local transformers EnCodec folder (``write_tiny_hf_encodec``) at the released codec's
# rate, hop and codebooks (32 kHz, ratios [8, 5, 4, 4] = 640 = 50 frames/s, 4 × 2048 at
# 2.2 kbps), and the LM config at MusicGen's values (t5-base, CFG dropout 0.3, word dropout
# 0.3), small sizes.

MUSICGEN_CARD = 2048
MUSICGEN_T5 = "t5-base"     # audiocraft's T5Conditioner asserts d_model 768 for it
ENCODEC_NAME = "facebook/encodec_32khz"


def write_tiny_hf_encodec(path, seed: int = 0) -> Path:
    """A transformers ``EncodecModel`` folder with encodec_32khz's rate, hop, codebook size and
    bandwidth (so audiocraft's wrapper derives 4 codebooks), tiny widths."""
    import torch
    from transformers import EncodecConfig, EncodecModel

    torch.manual_seed(seed)
    cfg = EncodecConfig(sampling_rate=32000, audio_channels=1, target_bandwidths=[2.2],
                        upsampling_ratios=[8, 5, 4, 4], codebook_size=MUSICGEN_CARD,
                        hidden_size=16, num_filters=4, num_residual_layers=1, num_lstm_layers=1,
                        normalize=False, chunk_length_s=None, overlap=None, use_causal_conv=False,
                        norm_type="weight_norm")
    model = EncodecModel(cfg)
    with torch.no_grad():  # codebooks start at zero: spread them over the encoder's latents
        lat = model.encoder(0.3 * torch.randn(1, 1, 32000)).transpose(1, 2).reshape(-1, 16)
        mean, std = lat.mean(0), lat.std(0)
        for i, layer in enumerate(model.quantizer.layers):
            emb = (mean if i == 0 else 0) + std * 0.5 ** i * torch.randn(MUSICGEN_CARD, 16)
            layer.codebook.embed.copy_(emb)
            layer.codebook.embed_avg.copy_(emb)
    model.save_pretrained(str(path))
    return Path(path)


def musicgen_cfg(**kwargs) -> dict:
    return xp_cfg(**{"segment_duration": 30.0, "sample_rate": 32000, "t5_name": MUSICGEN_T5,
                     "card": MUSICGEN_CARD,
                     "cfg_dropout": 0.3, "word_dropout": 0.3, **kwargs})


def write_tiny_musicgen(path, t5_dir, seed: int = 0, **cfg_kwargs) -> Path:
    """A tiny MusicGen folder as the hub has it: the LM exported as ``export_lm`` does, the
    compression package as ``export_pretrained_compression_model`` writes it."""
    import torch

    path, _, package = _exported(path, musicgen_cfg(**cfg_kwargs), t5_dir, seed,
                                 compression=False)
    torch.save({"pretrained": ENCODEC_NAME, "exported": True, "version": package["version"]},
               path / "compression_state_dict.bin")
    return path
