"""FIGARO's networks, written so that their parameter names equal the official checkpoints'.

Why not ``transformers``: FIGARO is a ``transformers.EncoderDecoderModel`` of two BERTs with
``position_embedding_type='relative_key_query'``; transformers 5.x removed relative position
embeddings from ``BertSelfAttention``, so the same computation is written here with the module
tree of transformers 4.x:

``transformer.encoder`` = ``BertModel`` (embeddings, encoder.layer[i], pooler),
``transformer.decoder`` = ``BertLMHeadModel`` (bert = ``BertModel`` without pooler, with
``crossattention`` in every layer, and the unused ``cls.predictions`` head of vocab size 1).

Computation (transformers 4.x ``BertSelfAttention``, relative_key_query): scores =
(q·k + q·D[l-r] + k·D[l-r]) / sqrt(d_head), D = ``distance_embedding`` of
2*max_position_embeddings-1 rows; embeddings = inputs_embeds + token_type_embeddings[0], then
LayerNorm (absolute ``position_embeddings`` exist but are not added); GELU (erf); LayerNorm eps
1e-12; no attention masks except the decoder's causal mask (FIGARO passes none).

Cross-attention: checkpoints trained with transformers < 4.13 have relative position embeddings
in cross-attention too (``crossattention.self.distance_embedding``); later ones do not. Which one
a checkpoint is, is read from its keys (the official loader tries one, then the other).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: BertConfig values FIGARO fixes (src/models/seq2seq.py, src/models/vae.py)
MAX_POSITION_EMBEDDINGS = 1024
TYPE_VOCAB_SIZE = 2
LAYER_NORM_EPS = 1e-12


class BertSelfAttention(nn.Module):
    def __init__(self, d: int, heads: int, relative: bool, dropout: float):
        super().__init__()
        if d % heads:
            raise ValueError(f"hidden size {d} is not a multiple of {heads} attention heads")
        self.heads, self.head_dim = heads, d // heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.relative = relative
        if relative:
            self.distance_embedding = nn.Embedding(2 * MAX_POSITION_EMBEDDINGS - 1, self.head_dim)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x):
        B, L, _ = x.shape
        return x.view(B, L, self.heads, self.head_dim).transpose(1, 2)

    def _relative_scores(self, q, k):
        """q·D[l-r] + k·D[l-r] (transformers' two einsums over a [lq, lk, d] table), computed
        as products with the lq+lk-1 distinct distance vectors, then gathered: the same sums,
        without materialising the table (the einsum form is ~5x slower on CPU)."""
        B, H, lq, _ = q.shape
        lk = k.shape[2]
        M = MAX_POSITION_EMBEDDINGS
        if lq > M or lk > M:
            raise ValueError(f"sequence longer than max_position_embeddings={M}")
        table = self.distance_embedding.weight[M - lk:M + lq - 1].to(q.dtype)  # l-r = -(lk-1)..lq-1
        idx = (torch.arange(lq, device=q.device)[:, None]
               - torch.arange(lk, device=q.device)[None, :]) + (lk - 1)
        by_q = (q @ table.t()).gather(-1, idx.expand(B, H, lq, lk))
        by_k = (k @ table.t()).gather(-1, idx.t().expand(B, H, lk, lq)).transpose(-1, -2)
        return by_q + by_k

    def forward(self, hidden, context=None, mask=None):
        src = hidden if context is None else context
        q, k, v = self._split(self.query(hidden)), self._split(self.key(src)), self._split(self.value(src))
        scores = q @ k.transpose(-1, -2)
        if self.relative:
            scores = scores + self._relative_scores(q, k)
        scores = scores / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        probs = self.dropout(scores.softmax(-1))
        out = (probs @ v).transpose(1, 2).reshape(hidden.shape[0], hidden.shape[1], -1)
        return out


class BertSelfOutput(nn.Module):
    def __init__(self, d: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, d: int, heads: int, relative: bool, dropout: float):
        super().__init__()
        self.self = BertSelfAttention(d, heads, relative, dropout)
        self.output = BertSelfOutput(d, dropout)

    def forward(self, h, context=None, mask=None):
        return self.output(self.self(h, context, mask), h)


class BertIntermediate(nn.Module):
    def __init__(self, d: int, ffn: int):
        super().__init__()
        self.dense = nn.Linear(d, ffn)

    def forward(self, h):
        return F.gelu(self.dense(h))


class BertOutput(nn.Module):
    def __init__(self, d: int, ffn: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(ffn, d)
        self.LayerNorm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertLayer(nn.Module):
    def __init__(self, d, heads, ffn, dropout, cross: bool, cross_relative: bool):
        super().__init__()
        self.attention = BertAttention(d, heads, True, dropout)
        if cross:
            self.crossattention = BertAttention(d, heads, cross_relative, dropout)
        self.intermediate = BertIntermediate(d, ffn)
        self.output = BertOutput(d, ffn, dropout)

    def forward(self, h, mask=None, encoder_hidden=None):
        h = self.attention(h, mask=mask)
        if encoder_hidden is not None:
            h = self.crossattention(h, context=encoder_hidden)
        return self.output(self.intermediate(h), h)


class BertEncoder(nn.Module):
    def __init__(self, n_layers, d, heads, ffn, dropout, cross=False, cross_relative=False):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(d, heads, ffn, dropout, cross, cross_relative)
                                   for _ in range(n_layers))

    def forward(self, h, mask=None, encoder_hidden=None):
        for layer in self.layer:
            h = layer(h, mask, encoder_hidden)
        return h


class BertEmbeddings(nn.Module):
    def __init__(self, d: int, dropout: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(1, d, padding_idx=0)  # vocab_size=1, never used
        self.position_embeddings = nn.Embedding(MAX_POSITION_EMBEDDINGS, d)  # not added
        self.token_type_embeddings = nn.Embedding(TYPE_VOCAB_SIZE, d)
        self.LayerNorm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)
        self.dropout = nn.Dropout(dropout)

    def forward(self, inputs_embeds):
        return self.dropout(self.LayerNorm(inputs_embeds + self.token_type_embeddings.weight[0]))


class BertPooler(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.dense = nn.Linear(d, d)

    def forward(self, h):
        return torch.tanh(self.dense(h[:, 0]))


class BertModel(nn.Module):
    """``is_decoder``: causal self-attention + cross-attention to ``encoder_hidden``."""

    def __init__(self, n_layers, d, heads, ffn, dropout=0.1, is_decoder=False,
                 cross_relative=False, pooler=True):
        super().__init__()
        self.is_decoder = is_decoder
        self.embeddings = BertEmbeddings(d, dropout)
        self.encoder = BertEncoder(n_layers, d, heads, ffn, dropout, cross=is_decoder,
                                   cross_relative=cross_relative)
        if pooler:
            self.pooler = BertPooler(d)

    def forward(self, inputs_embeds, encoder_hidden=None):
        h = self.embeddings(inputs_embeds)
        mask = None
        if self.is_decoder:
            L = h.shape[1]
            mask = torch.ones(L, L, dtype=torch.bool, device=h.device).tril()
        return self.encoder(h, mask, encoder_hidden)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.LayerNorm = nn.LayerNorm(d, eps=LAYER_NORM_EPS)


class BertLMPredictionHead(nn.Module):
    """Present only so checkpoint keys match; FIGARO reads hidden states, not these logits."""

    def __init__(self, d: int):
        super().__init__()
        self.transform = BertPredictionHeadTransform(d)
        self.decoder = nn.Linear(d, 1)
        self.bias = self.decoder.bias  # transformers 4.x: decoder.bias is the head's bias


class BertOnlyMLMHead(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.predictions = BertLMPredictionHead(d)


class BertLMHeadModel(nn.Module):
    def __init__(self, n_layers, d, heads, ffn, dropout, cross_relative):
        super().__init__()
        self.bert = BertModel(n_layers, d, heads, ffn, dropout, is_decoder=True,
                              cross_relative=cross_relative, pooler=False)
        self.cls = BertOnlyMLMHead(d)
        # tied input/output embeddings, as transformers ties them (tie_word_embeddings=True)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight


class EncoderDecoder(nn.Module):
    def __init__(self, enc_layers, dec_layers, d, heads, enc_ffn, dec_ffn, dropout,
                 cross_relative):
        super().__init__()
        self.encoder = BertModel(enc_layers, d, heads, enc_ffn, dropout)
        self.decoder = BertLMHeadModel(dec_layers, d, heads, dec_ffn, dropout, cross_relative)


# ---------------------------------------------------------------------------------------------
# Seq2SeqModule


#: Seq2SeqModule.__init__ keyword arguments and their defaults (src/models/seq2seq.py)
SEQ2SEQ_HPARAMS = {
    "d_model": 512, "d_latent": 512, "n_codes": 512, "n_groups": 8, "context_size": 512,
    "lr": 1e-4, "lr_schedule": "sqrt_decay", "warmup_steps": None, "max_steps": None,
    "encoder_layers": 6, "decoder_layers": 12, "intermediate_size": 2048,
    "num_attention_heads": 8, "description_flavor": "description",
    "description_options": None, "use_pretrained_latent_embeddings": True,
}
#: legacy keys the official loader drops before calling the constructor
LEGACY_HPARAMS = ("flavor", "vae_run")
FLAVORS = ("latent", "description", "none", "both")
MAX_POSITIONS = 512


class GroupEmbedding(nn.Module):
    def __init__(self, n_tokens, n_groups, out_dim, inner_dim=128):
        super().__init__()
        self.n_groups, self.inner_dim = n_groups, inner_dim
        self.embedding = nn.Embedding(n_tokens, inner_dim)
        self.proj = nn.Linear(n_groups * inner_dim, out_dim, bias=False)

    def forward(self, x):
        emb = self.embedding(x)
        return self.proj(emb.view(*x.shape[:-1], self.n_groups * self.inner_dim))


class Seq2Seq(nn.Module):
    """FIGARO's ``Seq2SeqModule`` (networks only)."""

    def __init__(self, hp: dict, remi_vocab_size: int, desc_vocab_size: int,
                 cross_relative: bool = False, dropout: float = 0.1):
        super().__init__()
        self.hp = hp
        flavor = hp["description_flavor"]
        if flavor not in FLAVORS:
            raise ValueError(f"unknown description_flavor {flavor!r}; expected one of {FLAVORS}")
        self.flavor = flavor
        d = self.d_model = hp["d_model"]
        self.context_size = hp["context_size"]
        self.transformer = EncoderDecoder(hp["encoder_layers"], hp["decoder_layers"], d,
                                          hp["num_attention_heads"], hp["intermediate_size"],
                                          hp["intermediate_size"], dropout, cross_relative)
        self.max_bars = self.context_size
        self.bar_embedding = nn.Embedding(self.max_bars + 1, d)
        self.pos_embedding = nn.Embedding(MAX_POSITIONS + 1, d)
        if flavor in ("latent", "both"):
            if hp["use_pretrained_latent_embeddings"]:
                self.latent_in = nn.Linear(hp["d_latent"], d, bias=False)
            else:
                self.latent_in = GroupEmbedding(hp["n_codes"], hp["n_groups"], d,
                                                inner_dim=hp["d_latent"] // hp["n_groups"])
        if flavor in ("description", "both"):
            self.desc_in = nn.Embedding(desc_vocab_size, d)
        if flavor == "both":
            self.desc_proj = nn.Linear(2 * d, d, bias=False)
        self.in_layer = nn.Embedding(remi_vocab_size, d)
        self.out_layer = nn.Linear(d, remi_vocab_size, bias=False)

    def encode(self, description=None, desc_bar_ids=None, latents=None):
        if self.flavor == "both":
            de, le = self.desc_in(description), self.latent_in(latents)
            L = max(de.shape[1], le.shape[1])
            de = F.pad(de, (0, 0, 0, L - de.shape[1]))
            le = F.pad(le, (0, 0, 0, L - le.shape[1]))
            if desc_bar_ids is not None:
                de = de + self.bar_embedding(desc_bar_ids)
            z = self.desc_proj(torch.cat([de, le], dim=-1))
        elif self.flavor == "description":
            z = self.desc_in(description)
            if desc_bar_ids is not None:
                z = z + self.bar_embedding(desc_bar_ids)
        elif self.flavor == "latent":
            z = self.latent_in(latents)
        else:
            return None
        return self.transformer.encoder(z)

    def decode(self, x, bar_ids, position_ids, encoder_hidden=None):
        L = x.shape[1]
        h = self.in_layer(x) + self.bar_embedding(bar_ids) + self.pos_embedding(position_ids)
        if encoder_hidden is not None:
            # the official code pads both to one length (relative embeddings need it)
            T = max(L, encoder_hidden.shape[1])
            h = F.pad(h, (0, 0, 0, T - L))
            encoder_hidden = F.pad(encoder_hidden, (0, 0, 0, T - encoder_hidden.shape[1]))
        out = self.transformer.decoder.bert(h, encoder_hidden)[:, :L]
        return self.out_layer(out)

    def forward(self, x, bar_ids, position_ids, description=None, desc_bar_ids=None,
                latents=None):
        enc = self.encode(description, desc_bar_ids, latents)
        return self.decode(x, bar_ids, position_ids, enc)


# ---------------------------------------------------------------------------------------------
# VQ-VAE (src/models/vae.py): only the encoder path runs; the rest exists for strict loading


VQVAE_HPARAMS = {
    "d_model": 512, "context_size": 256, "n_codes": 1024, "n_groups": 2, "d_latent": 1024,
    "lr": 1e-4, "lr_schedule": "sqrt_decay", "warmup_steps": 1000, "max_steps": 10000,
    "encoder_layers": 6, "decoder_layers": 6, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048,
    "windowed_attention_pr": 0.0, "max_lookahead": 4, "disable_vq": False,
}
VQVAE_HEADS = 8


class VectorQuantizeEMA(nn.Module):
    def __init__(self, d_latent, n_codes, n_groups=1):
        super().__init__()
        if d_latent % n_groups:
            raise ValueError(f"d_latent={d_latent} must be divisible by n_groups={n_groups}")
        self.n_groups, self.dim, self.n_codes = n_groups, d_latent // n_groups, n_codes
        self.register_buffer("embedding", torch.zeros(n_codes, self.dim))
        self.register_buffer("cluster_size", torch.ones(n_codes))
        self.register_buffer("cluster_sum", torch.zeros(n_codes, self.dim))

    def forward(self, x):
        x_ = x.reshape(-1, self.dim)
        emb_t = self.embedding.t()
        dist = x_.pow(2).sum(1, keepdim=True) - 2 * x_ @ emb_t + emb_t.pow(2).sum(0, keepdim=True)
        idx = (-dist).max(1).indices
        q = F.embedding(idx, self.embedding).view(-1, self.n_groups * self.dim)
        return {"z": x + (q - x), "codes": idx.view(-1, self.n_groups)}


class VqVae(nn.Module):
    """FIGARO's ``VqVaeModule`` (networks only). ``encoder``/``decoder`` alias the transformer's
    halves, so the state dict holds both key sets, as the official module's does."""

    def __init__(self, hp: dict, remi_vocab_size: int, cross_relative: bool = False):
        super().__init__()
        self.hp = hp
        d = hp["d_model"]
        self.context_size = hp["context_size"]
        self.transformer = EncoderDecoder(hp["encoder_layers"], hp["decoder_layers"], d,
                                          VQVAE_HEADS, hp["encoder_ffn_dim"],
                                          hp["decoder_ffn_dim"], 0.1, cross_relative)
        self.encoder = self.transformer.encoder
        self.decoder = self.transformer.decoder
        self.in_layer = nn.Embedding(remi_vocab_size, d)
        self.out_layer = nn.Linear(d, remi_vocab_size, bias=False)
        self.vq_embed = VectorQuantizeEMA(hp["d_latent"], hp["n_codes"], hp["n_groups"])
        self.pooling = nn.Linear(d, hp["d_latent"], bias=False)
        self.unpooling = nn.Linear(hp["d_latent"], d, bias=False)
        self.attention_proj = nn.Linear(d, d)

    def encode(self, x):
        hidden = self.encoder(self.in_layer(x))
        z_e = self.pooling(self.encoder.pooler(hidden))
        if self.hp["disable_vq"]:
            return {"z": z_e}
        return self.vq_embed(z_e)
