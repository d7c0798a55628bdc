"""A tiny Stable Audio Open pipeline folder, written by ``StableAudioPipeline.save_pretrained``
exactly as the hub's stabilityai/stable-audio-open-1.0 is laid out (model_index.json and the
subfolders vae, text_encoder, tokenizer, projection_model, transformer, scheduler).

Same classes and same wiring as the release (StableAudioDiTModel with grouped-query
self-attention, cross-attention to [T5 tokens, seconds_start, seconds_total] and a global
[seconds_start | seconds_total] token; AutoencoderOobleck; StableAudioProjectionModel with
min 0 / max 512 seconds; CosineDPMSolverMultistepScheduler with sigma 0.3..500,
v-prediction), tiny widths. The VAE runs at 8 kHz with a hop of 64 and the DiT window is 128
latent frames, so the model's window is 1.024 s and the test clips (0.6–2.5 s) exercise both the
zero-padded and the cropped case; the release runs at 44.1 kHz, hop 2048, 1024 frames (47.55 s).
"""

from __future__ import annotations

import string
from pathlib import Path

from tiny_parts import unigram_t5_tokenizer

RATE = 8000
HOP = 64
FRAMES = 128
WINDOW_SECONDS = FRAMES * HOP / RATE


def tiny_t5_tokenizer(model_max_length=16):
    """A unigram T5Tokenizer (pad 0, eos 1, unk 2) over letters; SAO pads prompts to the
    tokenizer's model_max_length (128 in the release)."""
    return unigram_t5_tokenizer(string.ascii_lowercase + string.digits + ",",
                                spaced=string.ascii_lowercase, model_max_length=model_max_length)


def write_tiny_stable_audio(path, seed: int = 0) -> Path:
    import torch
    from diffusers import (AutoencoderOobleck, CosineDPMSolverMultistepScheduler,
                           StableAudioDiTModel, StableAudioPipeline)
    from diffusers.pipelines.stable_audio import StableAudioProjectionModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tok = tiny_t5_tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=32, d_ff=24, d_kv=8, num_heads=2,
                                 num_layers=1, feed_forward_proj="relu", pad_token_id=0,
                                 eos_token_id=1, decoder_start_token_id=0))
    projection = StableAudioProjectionModel(text_encoder_dim=32, conditioning_dim=16,
                                            min_value=0, max_value=512)
    transformer = StableAudioDiTModel(sample_size=FRAMES, in_channels=4, num_layers=2,
                                      attention_head_dim=8, num_attention_heads=2,
                                      num_key_value_attention_heads=1, out_channels=4,
                                      cross_attention_dim=16, time_proj_dim=8,
                                      global_states_input_dim=32, cross_attention_input_dim=16)
    vae = AutoencoderOobleck(encoder_hidden_size=8, downsampling_ratios=[4, 4, 4],
                             channel_multiples=[1, 2, 2], decoder_channels=8,
                             decoder_input_channels=4, audio_channels=2, sampling_rate=RATE)
    with torch.no_grad():  # zero-initialised norms/projections: give every weight some spread
        for module in (projection, transformer):
            for p in module.parameters():
                p.add_(0.05 * torch.randn_like(p))
    scheduler = CosineDPMSolverMultistepScheduler(
        sigma_min=0.3, sigma_max=500, sigma_data=1.0, sigma_schedule="exponential",
        num_train_timesteps=1000, solver_order=2, prediction_type="v_prediction", rho=7.0,
        solver_type="midpoint", lower_order_final=True, euler_at_final=False,
        final_sigmas_type="zero")
    pipe = StableAudioPipeline(vae=vae, text_encoder=t5, projection_model=projection,
                               tokenizer=tok, transformer=transformer, scheduler=scheduler)
    pipe.save_pretrained(str(path))
    return Path(path)
