"""Tiny checkpoints written in exactly the official on-disk formats of AudioLDM2 and TANGO.

Everything is built locally (no hub): the tokenizers come from in-memory vocabularies, the
networks from tiny configs with random weights. The plugins then load these folders through the
same code path a user's real checkpoint takes.
"""

from __future__ import annotations

import functools
import json
import string

import numpy as np
import pytest
from tiny_parts import captioned, unigram_t5_tokenizer, write_clips

SCALE_AUDIOLDM2 = 0.4110932946205139
SCALE_TANGO = 0.9227914214134216
CAPTIONS = ["a dog barks twice", "rain on a tin roof and distant thunder", ""]


# ---------------------------------------------------------------------------------------------
# tokenizers


def tiny_roberta_tokenizer(model_max_length=32):
    """A byte-level BPE RobertaTokenizer (what CLAP uses) with the 256-byte alphabet only."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import RobertaTokenizer

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for ch in sorted(ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    vocab["<mask>"] = len(vocab)
    tok = RobertaTokenizer(vocab=vocab, merges=[])
    tok.model_max_length = model_max_length
    return tok


def tiny_t5_tokenizer(model_max_length=128):
    """A unigram T5Tokenizer (FLAN-T5 style: pad 0, eos 1, unk 2) over letters and a few words."""
    return unigram_t5_tokenizer(string.ascii_lowercase,
                                words=("▁a", "▁dog", "▁rain", "▁on", "▁and", "▁the"),
                                model_max_length=model_max_length)


def tiny_t5_config():
    from transformers import T5Config

    return T5Config(vocab_size=64, d_model=32, d_ff=24, d_kv=8, num_heads=2, num_layers=2,
                    feed_forward_proj="gated-gelu", decoder_start_token_id=0, pad_token_id=0,
                    eos_token_id=1)


# ---------------------------------------------------------------------------------------------
# AudioLDM2: a diffusers pipeline folder (model_index.json + component subfolders)


def write_tiny_audioldm2(path, language_model_class="GPT2Model", seed=0):
    """Write a tiny AudioLDM2 pipeline folder with ``save_pretrained``; the language model is a
    ``GPT2Model`` as in the released cvssp/audioldm2 (the diffusers/transformers mismatch)."""
    import torch
    import transformers
    from diffusers import AudioLDM2Pipeline, AutoencoderKL, DDIMScheduler
    from diffusers.pipelines.audioldm2 import (AudioLDM2ProjectionModel,
                                               AudioLDM2UNet2DConditionModel)
    from transformers import (ClapConfig, ClapFeatureExtractor, ClapModel, GPT2Config,
                              SpeechT5HifiGan, SpeechT5HifiGanConfig, T5EncoderModel)

    torch.manual_seed(seed)
    clap = ClapModel(ClapConfig(
        text_config=dict(bos_token_id=0, eos_token_id=2, hidden_size=16, intermediate_size=24,
                         num_attention_heads=2, num_hidden_layers=1, pad_token_id=1,
                         vocab_size=300, projection_dim=16, max_position_embeddings=40),
        audio_config=dict(spec_size=64, window_size=4, num_mel_bins=64, intermediate_size=24,
                          depths=[1, 1], num_attention_heads=[1, 1], num_hidden_layers=2,
                          hidden_size=16, projection_dim=16, patch_size=2, patch_stride=2,
                          patch_embed_input_channels=4),
        projection_dim=16))
    t5 = T5EncoderModel(tiny_t5_config())
    lm_cfg = GPT2Config(n_embd=16, n_head=2, n_layer=1, vocab_size=50, n_ctx=99, n_positions=99,
                        bos_token_id=0, eos_token_id=0)
    lm_cfg.max_new_tokens = 8
    lm = getattr(transformers, language_model_class)(lm_cfg)
    projection = AudioLDM2ProjectionModel(text_encoder_dim=16, text_encoder_1_dim=32,
                                          langauge_model_dim=16)
    unet = AudioLDM2UNet2DConditionModel(
        sample_size=32, in_channels=8, out_channels=8, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=([None, 16, 32], [None, 16, 32]), attention_head_dim=4)
    vae = AutoencoderKL(in_channels=1, out_channels=1, latent_channels=8,
                        block_out_channels=[8, 8, 8], layers_per_block=1, norm_num_groups=8,
                        down_block_types=["DownEncoderBlock2D"] * 3,
                        up_block_types=["UpDecoderBlock2D"] * 3,
                        scaling_factor=SCALE_AUDIOLDM2, sample_size=1024)
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.0015, beta_end=0.0195,
                              beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
    vocoder = SpeechT5HifiGan(SpeechT5HifiGanConfig(
        model_in_dim=64, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[2, 2],
        upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3, 7],
        resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], normalize_before=False))
    pipe = AudioLDM2Pipeline(vae=vae, text_encoder=clap, text_encoder_2=t5,
                             projection_model=projection, language_model=lm,
                             tokenizer=tiny_roberta_tokenizer(), tokenizer_2=tiny_t5_tokenizer(),
                             feature_extractor=ClapFeatureExtractor(), unet=unet,
                             scheduler=scheduler, vocoder=vocoder)
    pipe.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def tiny_audioldm2_dir(tmp_path_factory):
    return write_tiny_audioldm2(tmp_path_factory.mktemp("audioldm2") / "ckpt")


# ---------------------------------------------------------------------------------------------
# audio clips


@pytest.fixture(scope="session")
def tiny_audio_files(tmp_path_factory):
    """Three short clips at different rates/channel counts, one per caption in CAPTIONS."""
    return write_clips(tmp_path_factory.mktemp("clips"),
                       [(16000, 1, 2.0), (22050, 2, 3.0), (44100, 1, 11.0)],
                       freqs=[200, 500, 800], noise=0.05, seed=1)


def samples_for(paths):
    return captioned(paths, CAPTIONS)


# ---------------------------------------------------------------------------------------------
# TANGO: main_config.json, vae_config.json, stft_config.json + three torch-pickled state dicts


def tiny_tango_ddconfig():
    return {"double_z": True, "z_channels": 8, "resolution": 256, "downsample_time": False,
            "in_channels": 1, "out_ch": 1, "ch": 32, "ch_mult": [1, 1, 2], "num_res_blocks": 1,
            "attn_resolutions": [], "dropout": 0.0}


def tiny_tango_unet_config():
    return {"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.10.0.dev0",
            "act_fn": "silu", "attention_head_dim": [2, 4], "block_out_channels": [32, 64],
            "center_input_sample": False, "cross_attention_dim": 32,
            "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
            "downsample_padding": 1, "dual_cross_attention": False, "flip_sin_to_cos": True,
            "freq_shift": 0, "in_channels": 8, "layers_per_block": 1,
            "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
            "num_class_embeds": None, "only_cross_attention": False, "out_channels": 8,
            "sample_size": [32, 2], "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
            "use_linear_projection": True, "upcast_attention": True}


SD21_SCHEDULER = {"_class_name": "DDIMScheduler", "_diffusers_version": "0.8.0",
                  "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                  "clip_sample": False, "num_train_timesteps": 1000,
                  "prediction_type": "v_prediction", "set_alpha_to_one": False,
                  "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None}


def write_tiny_tango(path, seed=0):
    """A TANGO checkpoint folder as on the hub (declare-lab/tango) plus what the GitHub repo and
    the hub cache would provide: ``configs/diffusion_model_config.json`` (the UNet config the
    main config points to), ``scheduler/scheduler_config.json`` (SD-2.1's) and a FLAN-T5
    tokenizer directory (``flan-t5/``, with the encoder's config.json as on the hub).

    The VAE state dict is produced by ``OriginalAutoencoder`` (below), whose modules carry
    the original AudioLDM names, plus stand-in ``vocoder.*`` tensors."""
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import T5EncoderModel

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    (path / "configs").mkdir(exist_ok=True)
    (path / "scheduler").mkdir(exist_ok=True)
    unet_cfg = tiny_tango_unet_config()
    (path / "configs" / "diffusion_model_config.json").write_text(json.dumps(unet_cfg, indent=2))
    (path / "scheduler" / "scheduler_config.json").write_text(json.dumps(SD21_SCHEDULER))
    tok_dir = path / "flan-t5"
    tiny_t5_tokenizer().save_pretrained(str(tok_dir))
    t5_cfg = tiny_t5_config()
    t5_cfg.save_pretrained(str(tok_dir))
    main_cfg = {"text_encoder_name": "google/flan-t5-large",
                "scheduler_name": "stabilityai/stable-diffusion-2-1", "unet_model_name": None,
                "unet_model_config_path": "configs/diffusion_model_config.json",
                "snr_gamma": 5.0}
    vae_cfg = {"image_key": "fbank", "subband": 1, "embed_dim": 8, "time_shuffle": 1,
               "ddconfig": tiny_tango_ddconfig(), "scale_factor": SCALE_TANGO}
    stft_cfg = {"filter_length": 1024, "hop_length": 160, "win_length": 1024,
                "n_mel_channels": 64, "sampling_rate": 16000, "mel_fmin": 0, "mel_fmax": 8000}
    for name, cfg in (("main", main_cfg), ("vae", vae_cfg), ("stft", stft_cfg)):
        (path / f"{name}_config.json").write_text(json.dumps(cfg))
    (path / "config.json").write_text("{}")  # the hub repo's dummy config.json

    unet = UNet2DConditionModel.from_config(unet_cfg)
    t5 = T5EncoderModel(t5_cfg)
    main = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    main.update({f"text_encoder.{k}": v for k, v in t5.state_dict().items()})
    torch.save(main, path / "pytorch_model_main.bin")

    vae = OriginalAutoencoder(tiny_tango_ddconfig(), embed_dim=8)
    with torch.no_grad():  # random-init GroupNorm affine params so a swapped norm is visible
        for name, p in vae.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    state = dict(vae.state_dict())
    state["vocoder.conv_pre.weight"] = torch.randn(16, 64, 7)
    state["vocoder.ups.0.bias"] = torch.randn(8)
    torch.save(state, path / "pytorch_model_vae.bin")
    torch.save(original_stft_state(), path / "pytorch_model_stft.bin")
    return path


# An independent re-statement of the original AudioLDM-v1 VAE (TANGO's
# audioldm/variational_autoencoder/modules.py): the module tree, hence the state-dict key names,
# and the forward pass follow the original, so the plugin's key mapping is checked both by name
# and by output.


def _norm(c):
    import torch

    return torch.nn.GroupNorm(32, c, eps=1e-6, affine=True)


def _silu(x):
    import torch

    return x * torch.sigmoid(x)


def _make_reference_classes():
    import torch
    from torch import nn

    class Res(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.cin, self.cout = cin, cout
            self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, 1, 1)
            self.norm2, self.dropout = _norm(cout), nn.Dropout(0.0)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
            if cin != cout:
                self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)

        def forward(self, x):
            h = self.conv1(_silu(self.norm1(x)))
            h = self.conv2(self.dropout(_silu(self.norm2(h))))
            return (self.nin_shortcut(x) if self.cin != self.cout else x) + h

    class Attn(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.norm = _norm(c)
            self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

        def forward(self, x):
            h = self.norm(x)
            q, k, v = self.q(h), self.k(h), self.v(h)
            b, c, hh, ww = q.shape
            q = q.reshape(b, c, hh * ww).permute(0, 2, 1)
            w = torch.softmax(torch.bmm(q, k.reshape(b, c, hh * ww)) * c ** -0.5, dim=2)
            h = torch.bmm(v.reshape(b, c, hh * ww), w.permute(0, 2, 1)).reshape(b, c, hh, ww)
            return x + self.proj_out(h)

    class Down(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, 2, 0)

        def forward(self, x):
            return self.conv(torch.nn.functional.pad(x, (0, 1, 0, 1)))

    class Up(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, 1, 1)

        def forward(self, x):
            return self.conv(torch.nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))

    class Encoder(nn.Module):
        def __init__(self, ch, ch_mult, num_res_blocks, in_channels, z_channels, **_):
            super().__init__()
            self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
            self.down = nn.ModuleList()
            mult = (1,) + tuple(ch_mult)
            for i, m in enumerate(ch_mult):
                level = nn.Module()
                level.block = nn.ModuleList()
                level.attn = nn.ModuleList()
                cin = ch * mult[i]
                for _j in range(num_res_blocks):
                    level.block.append(Res(cin, ch * m))
                    cin = ch * m
                if i != len(ch_mult) - 1:
                    level.downsample = Down(cin)
                self.down.append(level)
            self.mid = nn.Module()
            self.mid.block_1, self.mid.attn_1, self.mid.block_2 = Res(cin, cin), Attn(cin), Res(cin, cin)
            self.norm_out = _norm(cin)
            self.conv_out = nn.Conv2d(cin, 2 * z_channels, 3, 1, 1)

        def forward(self, x):
            h = self.conv_in(x)
            for i, level in enumerate(self.down):
                for blk in level.block:
                    h = blk(h)
                if i != len(self.down) - 1:
                    h = level.downsample(h)
            h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
            return self.conv_out(_silu(self.norm_out(h)))

    class Decoder(nn.Module):
        def __init__(self, ch, ch_mult, num_res_blocks, out_ch, z_channels, **_):
            super().__init__()
            cin = ch * ch_mult[-1]
            self.conv_in = nn.Conv2d(z_channels, cin, 3, 1, 1)
            self.mid = nn.Module()
            self.mid.block_1, self.mid.attn_1, self.mid.block_2 = Res(cin, cin), Attn(cin), Res(cin, cin)
            self.up = nn.ModuleList()
            for i in reversed(range(len(ch_mult))):
                level = nn.Module()
                level.block = nn.ModuleList()
                level.attn = nn.ModuleList()
                for _j in range(num_res_blocks + 1):
                    level.block.append(Res(cin, ch * ch_mult[i]))
                    cin = ch * ch_mult[i]
                if i != 0:
                    level.upsample = Up(cin)
                self.up.insert(0, level)
            self.norm_out = _norm(cin)
            self.conv_out = nn.Conv2d(cin, out_ch, 3, 1, 1)

        def forward(self, z):
            h = self.conv_in(z)
            h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
            for i in reversed(range(len(self.up))):
                for blk in self.up[i].block:
                    h = blk(h)
                if i != 0:
                    h = self.up[i].upsample(h)
            return self.conv_out(_silu(self.norm_out(h)))

    class OriginalAutoencoder(nn.Module):
        def __init__(self, ddconfig, embed_dim):
            super().__init__()
            self.encoder, self.decoder = Encoder(**ddconfig), Decoder(**ddconfig)
            z = ddconfig["z_channels"]
            self.quant_conv = nn.Conv2d(2 * z, 2 * embed_dim, 1)
            self.post_quant_conv = nn.Conv2d(embed_dim, z, 1)

        def encode_moments(self, x):
            return self.quant_conv(self.encoder(x))

        def decode(self, z):
            return self.decoder(self.post_quant_conv(z))

    return OriginalAutoencoder


def OriginalAutoencoder(ddconfig, embed_dim):
    return _make_reference_classes()(ddconfig, embed_dim)


@functools.lru_cache(maxsize=1)
def _original_stft_arrays():
    import librosa
    from scipy.signal import get_window

    n, hop = 1024, 160
    fourier = np.fft.fft(np.eye(n))[: n // 2 + 1]
    basis = np.vstack([np.real(fourier), np.imag(fourier)])
    window = get_window("hann", n, fftbins=True)
    forward = basis[:, None, :] * window
    inverse = np.linalg.pinv(n / hop * basis).T[:, None, :] * window  # ~3 s: computed once
    mel = librosa.filters.mel(sr=16000, n_fft=n, n_mels=64, fmin=0, fmax=8000)
    return forward, inverse, mel


def original_stft_state():
    """TacotronSTFT buffers as TANGO stores them: the windowed real/imag DFT basis, its scaled
    pseudo-inverse, and librosa's slaney mel filterbank."""
    import torch

    forward, inverse, mel = _original_stft_arrays()
    return {"stft_fn.forward_basis": torch.tensor(forward, dtype=torch.float32),
            "stft_fn.inverse_basis": torch.tensor(inverse, dtype=torch.float32),
            "mel_basis": torch.tensor(mel, dtype=torch.float32)}


@pytest.fixture(scope="session")
def tiny_tango_dir(tmp_path_factory):
    return write_tiny_tango(tmp_path_factory.mktemp("tango") / "ckpt")


@pytest.fixture(scope="session")
def diffusion_ckpt():
    """The helpers above, as a fixture: test modules must not ``import conftest`` (tests/ has a
    conftest of its own on sys.path, so the name is ambiguous)."""
    import types

    return types.SimpleNamespace(
        CAPTIONS=CAPTIONS, SCALE_AUDIOLDM2=SCALE_AUDIOLDM2, SCALE_TANGO=SCALE_TANGO,
        samples_for=samples_for, write_tiny_audioldm2=write_tiny_audioldm2,
        write_tiny_tango=write_tiny_tango, OriginalAutoencoder=OriginalAutoencoder,
        tiny_tango_ddconfig=tiny_tango_ddconfig)
