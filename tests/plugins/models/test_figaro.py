"""The ``figaro`` plugin: official checkpoint format, strict keys, scoring as FIGARO trains.

``official_seq2seq_keys`` / ``official_vqvae_keys`` spell out the state-dict keys of the official
modules, written from reading dvruette/figaro (src/models/seq2seq.py, vae.py) and transformers
4.x (``EncoderDecoderModel`` = ``BertModel`` with pooler + ``BertLMHeadModel``), independently of
the project's module code, so a renamed module breaks these tests.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from harness.contracts import Sample
from harness.errors import ConfigError, DataError, ModelLoadError
from plugins.models import _figaro_impl as fi
from plugins.models import _figaro_model as fm
from plugins.models import _figaro_remi as remi


def midi(path, n_bars, seed=0, program=0):
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0))
    inst = pretty_midi.Instrument(program)
    for i in range(n_bars * 4):
        p = int(rng.integers(55, 80))
        inst.notes.append(pretty_midi.Note(int(rng.integers(40, 120)), p, i * 0.5, i * 0.5 + 0.5))
    pm.instruments.append(inst)
    pm.write(str(path))
    return str(path)


# ---------------------------------------------------------------------------------------------
# the official key list, independent of the module code


def _bert_layer_keys(prefix, cross, cross_relative):
    keys = []
    blocks = [("attention", True)] + ([("crossattention", cross_relative)] if cross else [])
    for block, relative in blocks:
        for lin in ("query", "key", "value"):
            keys += [f"{prefix}{block}.self.{lin}.weight", f"{prefix}{block}.self.{lin}.bias"]
        if relative:
            keys.append(f"{prefix}{block}.self.distance_embedding.weight")
        keys += [f"{prefix}{block}.output.dense.weight", f"{prefix}{block}.output.dense.bias",
                 f"{prefix}{block}.output.LayerNorm.weight", f"{prefix}{block}.output.LayerNorm.bias"]
    keys += [f"{prefix}intermediate.dense.weight", f"{prefix}intermediate.dense.bias",
             f"{prefix}output.dense.weight", f"{prefix}output.dense.bias",
             f"{prefix}output.LayerNorm.weight", f"{prefix}output.LayerNorm.bias"]
    return keys


def _bert_keys(prefix, layers, decoder, cross_relative, pooler):
    keys = [f"{prefix}embeddings.{n}.weight" for n in
            ("word_embeddings", "position_embeddings", "token_type_embeddings")]
    keys += [f"{prefix}embeddings.LayerNorm.weight", f"{prefix}embeddings.LayerNorm.bias"]
    for i in range(layers):
        keys += _bert_layer_keys(f"{prefix}encoder.layer.{i}.", decoder, cross_relative)
    if pooler:
        keys += [f"{prefix}pooler.dense.weight", f"{prefix}pooler.dense.bias"]
    return keys


def _encoder_decoder_keys(prefix, enc_layers, dec_layers, cross_relative):
    keys = _bert_keys(f"{prefix}encoder.", enc_layers, False, False, True)
    keys += _bert_keys(f"{prefix}decoder.bert.", dec_layers, True, cross_relative, False)
    keys += [f"{prefix}decoder.cls.predictions.{n}" for n in
             ("bias", "transform.dense.weight", "transform.dense.bias",
              "transform.LayerNorm.weight", "transform.LayerNorm.bias", "decoder.weight",
              "decoder.bias")]
    return keys


def official_seq2seq_keys(hp, cross_relative=False):
    keys = _encoder_decoder_keys("transformer.", hp["encoder_layers"], hp["decoder_layers"],
                                 cross_relative)
    keys += ["bar_embedding.weight", "pos_embedding.weight", "in_layer.weight", "out_layer.weight"]
    if hp["description_flavor"] in ("latent", "both"):
        keys.append("latent_in.weight")
    if hp["description_flavor"] in ("description", "both"):
        keys.append("desc_in.weight")
    if hp["description_flavor"] == "both":
        keys.append("desc_proj.weight")
    return set(keys)


def official_vqvae_keys(hp, cross_relative=False):
    tr = _encoder_decoder_keys("transformer.", hp["encoder_layers"], hp["decoder_layers"],
                               cross_relative)
    aliases = [k[len("transformer."):] for k in tr]  # self.encoder / self.decoder aliases
    return set(tr + aliases + [
        "in_layer.weight", "out_layer.weight", "vq_embed.embedding", "vq_embed.cluster_size",
        "vq_embed.cluster_sum", "pooling.weight", "unpooling.weight", "attention_proj.weight",
        "attention_proj.bias"])


TINY = dict(fm.SEQ2SEQ_HPARAMS, d_model=16, d_latent=8, encoder_layers=1, decoder_layers=2,
            num_attention_heads=2, intermediate_size=24, context_size=48,
            description_flavor="description", warmup_steps=4000, max_steps=100000)
TINY_VAE = dict(fm.VQVAE_HPARAMS, d_model=16, context_size=24, n_codes=8, n_groups=2,
                d_latent=8, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=24,
                decoder_ffn_dim=24)


def write_ckpt(path, hp, cross_relative=False, old_buffers=False, extra=None, seed=0,
               vae=False):
    """A checkpoint as Lightning writes it: hyper_parameters, state_dict and the bookkeeping
    entries (epoch, global_step, version, optimizer and loop state)."""
    torch.manual_seed(seed)
    if vae:
        net = fm.VqVae(hp, len(remi.remi_vocab()), cross_relative=cross_relative)
        with torch.no_grad():
            net.vq_embed.embedding.normal_()
    else:
        net = fm.Seq2Seq(hp, len(remi.remi_vocab()), len(remi.description_vocab()),
                         cross_relative=cross_relative)
    sd = dict(net.state_dict())
    if old_buffers:  # transformers < 4.31 saved the position_ids buffers
        for k in [k for k in sd if k.endswith("embeddings.LayerNorm.weight")]:
            sd[k.replace("LayerNorm.weight", "position_ids")] = torch.arange(1024)[None]
    ckpt = {"epoch": 3, "global_step": 1234, "pytorch-lightning_version": "1.5.10",
            "state_dict": sd, "hparams_name": "kwargs", "hyper_parameters": dict(hp),
            "optimizer_states": [], "lr_schedulers": [], "callbacks": {}}
    ckpt.update(extra or {})
    torch.save(ckpt, path)
    return str(path)


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ["description", "both", "latent"])
@pytest.mark.parametrize("cross_relative", [False, True])
def test_module_keys_equal_the_official_keys(flavor, cross_relative):
    hp = dict(TINY, description_flavor=flavor)
    net = fm.Seq2Seq(hp, 10, 10, cross_relative=cross_relative)
    assert set(net.state_dict()) == official_seq2seq_keys(hp, cross_relative)
    vae = fm.VqVae(TINY_VAE, 10, cross_relative=cross_relative)
    assert set(vae.state_dict()) == official_vqvae_keys(TINY_VAE, cross_relative)


def test_loads_a_lightning_checkpoint_strictly(tmp_path):
    path = write_ckpt(tmp_path / "figaro-expert.ckpt", TINY, old_buffers=True,
                      extra={"hyper_parameters": dict(TINY, flavor="description", vae_run=None)})
    model, vae = fi.load_seq2seq(path)
    assert vae is None and model.flavor == "description" and not model.training
    ref = torch.load(path, weights_only=True)["state_dict"]
    assert torch.equal(model.out_layer.weight, ref["out_layer.weight"])


def _fake_modules(names: dict[str, dict]):
    """Install modules ``{dotted name: {attr: obj}}`` (and their parent packages) so objects
    pickle under the real Lightning names; returns a function that removes them again."""
    added = []
    for dotted, attrs in names.items():
        parts = dotted.split(".")
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            if name not in sys.modules:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        for attr, obj in attrs.items():
            obj.__module__, obj.__qualname__ = dotted, attr
            setattr(sys.modules[dotted], attr, obj)

    def remove():
        for name in added:
            sys.modules.pop(name, None)
    return remove


def test_checkpoint_with_lightning_objects_loads_without_lightning(tmp_path):
    # hyper_parameters as Lightning's AttributeDict and an old (< 1.5) callbacks dict keyed by
    # the callback class: the allow-listed names load as inert stand-ins, pytorch_lightning absent
    class AttributeDict(dict):
        pass

    class ModelCheckpoint:
        pass

    remove = _fake_modules({
        "pytorch_lightning.utilities.parsing": {"AttributeDict": AttributeDict},
        "pytorch_lightning.callbacks.model_checkpoint": {"ModelCheckpoint": ModelCheckpoint}})
    try:
        path = write_ckpt(tmp_path / "a.ckpt", TINY, extra={
            "hyper_parameters": AttributeDict(TINY),
            "callbacks": {ModelCheckpoint: {"best_model_path": "/x.ckpt"}}})
    finally:
        remove()
    model, _ = fi.load_seq2seq(path)
    assert model.context_size == TINY["context_size"]


def test_checkpoint_with_other_objects_is_refused_with_the_conversion_command(tmp_path):
    class Callback:
        pass

    remove = _fake_modules({"fake_lightning_callbacks": {"Callback": Callback}})
    try:
        cb = Callback()
        cb.best_model_path = "/x.ckpt"
        path = write_ckpt(tmp_path / "a.ckpt", TINY, extra={"callbacks": {"cb": cb}})
    finally:
        remove()
    with pytest.raises(ModelLoadError) as err:
        fi.load_seq2seq(path)
    msg = str(err.value)
    assert "'fake_lightning_callbacks.Callback'" in msg and "python -m harness.safeload" in msg
    assert "\n" not in msg
    # the documented conversion (for a trusted file) makes it loadable
    from harness import safeload

    out = tmp_path / "a.safe.ckpt"
    assert safeload.main([path, str(out), "--trust"]) == 0
    model, _ = fi.load_seq2seq(out)
    assert model.context_size == TINY["context_size"]


def test_cross_attention_with_relative_positions_is_recognised(tmp_path):
    path = write_ckpt(tmp_path / "old.ckpt", TINY, cross_relative=True)
    model, _ = fi.load_seq2seq(path)
    layer = model.transformer.decoder.bert.encoder.layer[0]
    assert layer.crossattention.self.relative


def test_missing_or_unexpected_keys_are_named(tmp_path):
    path = tmp_path / "bad.ckpt"
    write_ckpt(path, TINY)
    ck = torch.load(path, weights_only=True)
    del ck["state_dict"]["transformer.decoder.bert.encoder.layer.1.output.dense.bias"]
    ck["state_dict"]["transformer.encoder.extra.weight"] = torch.zeros(1)
    torch.save(ck, path)
    with pytest.raises(ModelLoadError) as err:
        fi.load_seq2seq(path)
    msg = str(err.value)
    assert "missing keys: transformer.decoder.bert.encoder.layer.1.output.dense.bias" in msg
    assert "unexpected keys: transformer.encoder.extra.weight" in msg


def test_bad_files_and_hparams(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        fi.load_seq2seq(tmp_path / "nope.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "nohp.ckpt")
    with pytest.raises(ModelLoadError, match="hyper_parameters"):
        fi.load_seq2seq(tmp_path / "nohp.ckpt")
    write_ckpt(tmp_path / "hp.ckpt", TINY, extra={"hyper_parameters": dict(TINY, d_modle=3)})
    with pytest.raises(ModelLoadError, match="d_modle"):
        fi.load_seq2seq(tmp_path / "hp.ckpt")
    both = write_ckpt(tmp_path / "figaro.ckpt", dict(TINY, description_flavor="both"))
    with pytest.raises(ModelLoadError, match="vae_checkpoint"):
        fi.load_seq2seq(both)
    with pytest.raises(ConfigError, match="checkpoint"):
        fi.FigaroModel()
    with pytest.raises(ConfigError):
        fi.FigaroModel(checkpoint="x", dtype="float8")


@pytest.fixture
def two_midis(tmp_path):
    return [Sample("short", midi(tmp_path / "short.mid", 1, seed=1)),
            Sample("long", midi(tmp_path / "long.mid", 30, seed=2, program=40))]


def _expected_label_positions(T, C):
    """Absolute positions scored once across FIGARO's windows of a T-token sequence."""
    starts = list(range(0, T, C + 1))
    spans = ([(s, s + C + 1) for s in starts[:-1]] + [(T - C - 1, T)]) if len(starts) > 1 \
        else [(0, min(T, C + 1))]
    seen = []
    for s, e in spans:
        seen += [p for p in range(s + 1, e) if p not in seen]
    return seen


def test_provide_on_two_midi_files(tmp_path, two_midis):
    ckpt = write_ckpt(tmp_path / "figaro-expert.ckpt", TINY)
    model = fi.FigaroModel(checkpoint=ckpt, batch_windows=3)
    assert model.outputs() == {"token_stats/conditional"}
    stats = model.provide(two_midis, {"token_stats/conditional"})["token_stats/conditional"]
    C = TINY["context_size"]
    v = remi.remi_vocab()
    for s, st in zip(two_midis, stats):
        enc = remi.encode_midi(s.path)
        seq = [v.to_i("<bos>")] + enc.event_ids.tolist() + [v.to_i("<eos>")]
        pos = _expected_label_positions(len(seq), C)
        assert len(st) == len(pos)
        assert st.token_ids.tolist() == [seq[p] for p in pos]
        assert np.all(st.logprob <= 0) and np.all(np.isfinite(st.max_other_logprob))
    assert len(stats[0]) < C < len(stats[1])  # one window vs several
    # no dedupe: the end-aligned window's overlap is counted twice; batch size changes nothing
    dup = fi.FigaroModel(checkpoint=ckpt, dedupe_overlap=False, batch_windows=1).provide(
        two_midis, {"token_stats/conditional"})["token_stats/conditional"]
    assert len(dup[1]) == C * len(remi.windows(remi.encode_midi(two_midis[1].path), C))
    np.testing.assert_allclose(dup[0].logprob, stats[0].logprob, atol=1e-6)
    capped = fi.FigaroModel(checkpoint=ckpt, max_windows=1).provide(
        two_midis, {"token_stats/conditional"})["token_stats/conditional"]
    assert len(capped[1]) == C
    np.testing.assert_allclose(capped[1].logprob, stats[1].logprob[:C], atol=1e-6)


def test_scores_equal_a_direct_teacher_forced_pass(tmp_path, two_midis):
    ckpt = write_ckpt(tmp_path / "figaro-expert.ckpt", TINY)
    model = fi.FigaroModel(checkpoint=ckpt)
    st = model.provide(two_midis[:1], {"token_stats/conditional"})["token_stats/conditional"][0]
    net, _ = fi.load_seq2seq(ckpt)
    w = remi.windows(remi.encode_midi(two_midis[0].path), TINY["context_size"])[0]
    C, n = TINY["context_size"], len(w.ids) - 1
    pad = lambda a, L: torch.tensor(np.pad(a, (0, L - len(a))))[None]  # noqa: E731
    with torch.no_grad():
        logits = net(pad(w.ids[:-1], C), pad(w.bar_ids[:-1], C), pad(w.position_ids[:-1], C),
                     description=pad(w.description[:C], C), desc_bar_ids=pad(w.desc_bar_ids[:C], C))
    lp = torch.log_softmax(logits[0, :n], -1).gather(-1, torch.tensor(w.ids[1:])[:, None])[:, 0]
    np.testing.assert_allclose(st.logprob, lp.numpy(), atol=1e-5)


def test_figaro_with_vq_vae_codes(tmp_path, two_midis):
    hp = dict(TINY, description_flavor="both")
    ckpt = write_ckpt(tmp_path / "figaro.ckpt", hp)
    vae = write_ckpt(tmp_path / "vq-vae.ckpt", TINY_VAE, vae=True)
    model = fi.FigaroModel(checkpoint=ckpt, vae_checkpoint=vae)
    stats = model.provide(two_midis, {"token_stats/conditional"})["token_stats/conditional"]
    assert len(stats[0]) == len(remi.encode_midi(two_midis[0].path).events) + 1
    enc = remi.encode_midi(two_midis[1].path)
    z = model._latents(enc)
    assert z.shape == (enc.n_bars, TINY_VAE["d_latent"])
    # the latents are codebook vectors (quantised per group)
    book = model._vae.vq_embed.embedding
    g = z.view(-1, TINY_VAE["d_latent"] // TINY_VAE["n_groups"])
    assert torch.allclose((g[:, None] - book[None]).norm(dim=-1).min(1).values,
                          torch.zeros(len(g)), atol=1e-5)
    ident = model.identity()
    assert ident["vae_sha256"] and ident["checkpoint_sha256"] != ident["vae_sha256"]
    bad_vae = write_ckpt(tmp_path / "vq-vae-16.ckpt", dict(TINY_VAE, d_latent=16), vae=True)
    with pytest.raises(ModelLoadError, match="d_latent"):
        fi.load_seq2seq(ckpt, bad_vae)


def test_files_figaro_would_skip_raise_data_error(tmp_path):
    ckpt = write_ckpt(tmp_path / "figaro-expert.ckpt", TINY)
    model = fi.FigaroModel(checkpoint=ckpt)
    too_long = Sample("long", midi(tmp_path / "l.mid", TINY["context_size"] + 2))
    with pytest.raises(DataError, match="bars"):
        model.provide([too_long], {"token_stats/conditional"})
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd nonsense")
    with pytest.raises(DataError, match="skipped"):
        model.provide([Sample("bad", str(bad))], {"token_stats/conditional"})


def test_reduced_precision_scores_stay_close(tmp_path, two_midis):
    ckpt = write_ckpt(tmp_path / "figaro-expert.ckpt", TINY)
    need = {"token_stats/conditional"}
    full = fi.FigaroModel(checkpoint=ckpt).provide(two_midis[:1], need)[
        "token_stats/conditional"][0]
    half = fi.FigaroModel(checkpoint=ckpt, dtype="bfloat16").provide(two_midis[:1], need)[
        "token_stats/conditional"][0]
    assert len(half) == len(full)
    assert abs(half.logprob.mean() - full.logprob.mean()) < 0.05


# -- hostile checkpoints (issue #15): nothing in a pickle runs --------------------------------


def test_code_pickled_into_a_checkpoint_never_runs(tmp_path):
    import hostile

    for kind in hostile.PICKLE_KINDS:
        marker = tmp_path / f"ran-{kind}"
        ckpt = hostile.code_pickle(tmp_path / f"{kind}.ckpt", marker, kind)
        with pytest.raises(ModelLoadError, match="FIGARO checkpoint"):
            fi.FigaroModel(checkpoint=ckpt).load()
        with pytest.raises(ModelLoadError, match="VQ-VAE"):
            fi.read_checkpoint(ckpt, "VQ-VAE checkpoint")
        assert not marker.exists()



def test_symbolic_canary_loads_through_figaro():
    from plugins.models._figaro_impl import FigaroModel
    from plugins.models._symbolic_canary_impl import SymbolicCanary

    # the canary's only checkpoint reader is FIGARO's (tested above with hostile pickles)
    assert issubclass(SymbolicCanary, FigaroModel)
    assert SymbolicCanary.load is FigaroModel.load

