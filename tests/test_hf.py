"""The "hf" policy on small transformers models (skipped when transformers is not installed)."""

from __future__ import annotations

import contextlib

import pytest
import torch

import fastinit

transformers = pytest.importorskip("transformers")

SEED = 7


def _models():
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    return {
        "llama": (LlamaForCausalLM, LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64,
                                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                                tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)),
        "gpt2": (GPT2LMHeadModel, GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                             bos_token_id=1, eos_token_id=2)),
        "bert": (BertModel, BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                       intermediate_size=64, max_position_embeddings=64, pad_token_id=0)),
    }


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_hf_materialize_equals_eager_apply(name):
    cls, cfg = _models()[name]
    a = cls(cfg)
    fastinit.apply(a, "hf", seed=SEED)
    with fastinit.empty_init(keep_numel=0):
        b = cls(cfg)
    fastinit.materialize(b, "cpu", "hf", seed=SEED)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    assert not [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert fastinit.deferred.last_materialize().meta_leftovers == []


@pytest.mark.parametrize("name", ["llama", "gpt2", "bert"])
def test_hf_values_follow_the_stream(name):
    cls, cfg = _models()[name]
    m = cls(cfg)
    fastinit.apply(m, "hf", seed=SEED)
    emb = m.get_input_embeddings().weight
    want = torch.empty_like(emb)
    std = getattr(cfg, "initializer_range", 0.02)
    ename = next(n for n, p in m.named_parameters() if p is emb)
    fastinit.init.normal_(want, 0.0, std, seed=SEED, key=fastinit.key_for(ename))
    pad = getattr(m.get_input_embeddings(), "padding_idx", None)
    if pad is not None:
        want[pad] = 0
        assert emb[pad].eq(0).all()
    assert torch.equal(emb.detach(), want)
    for n, p in m.named_parameters():
        if n.endswith("bias"):
            assert p.eq(0).all(), n
    if name == "llama":
        assert m.lm_head.weight is m.model.embed_tokens.weight


def test_hf_honours_tensor_flags():
    cls, cfg = _models()["gpt2"]
    m = cls(cfg)
    w = m.transformer.h[0].mlp.c_fc.weight
    with torch.no_grad():
        w.fill_(3.0)
    w._is_hf_initialized = True  # as if loaded from a checkpoint
    fastinit.apply(m, "hf", seed=SEED)
    assert w.eq(3.0).all()
    assert m.transformer.h[1].mlp.c_fc.weight.std() > 0


def test_hf_policy_rejects_plain_modules():
    with pytest.raises(TypeError, match="PreTrainedModel"):
        fastinit.apply(torch.nn.Linear(2, 2), "hf", seed=1)


# ---- ties, pad tokens, copied tables and meta builds: compared with eager transformers init, tensor by tensor ----

def _tied_models():
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        LlamaConfig,
        LlamaForCausalLM,
        ModernBertConfig,
        ModernBertForMaskedLM,
        OPTConfig,
        OPTForCausalLM,
        WhisperConfig,
        WhisperForConditionalGeneration,
    )

    small = {"num_attention_heads": 4}
    return {
        "llama": (LlamaForCausalLM, LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64,
                                                num_hidden_layers=1, num_key_value_heads=2, tie_word_embeddings=True,
                                                pad_token_id=0, bos_token_id=1, eos_token_id=2, **small)),
        "bert": (BertForMaskedLM, BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=1, intermediate_size=64,
                                             max_position_embeddings=64, pad_token_id=0, **small)),
        "opt": (OPTForCausalLM, OPTConfig(vocab_size=128, hidden_size=32, num_hidden_layers=1, ffn_dim=64,
                                          max_position_embeddings=64, pad_token_id=1, word_embed_proj_dim=32,
                                          **small)),
        "modernbert": (ModernBertForMaskedLM, ModernBertConfig(
            vocab_size=128, hidden_size=32, num_hidden_layers=1, intermediate_size=64, max_position_embeddings=64,
            pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2, **small)),
        "whisper": (WhisperForConditionalGeneration, WhisperConfig(
            vocab_size=128, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=32,
            max_target_positions=32, num_mel_bins=8, pad_token_id=0, decoder_start_token_id=1, bos_token_id=1,
            eos_token_id=2)),
    }


TIED = ["llama", "bert", "opt", "modernbert", "whisper"]


def _emb_and_head(m):
    return m.get_input_embeddings(), m.get_output_embeddings()


def _same_distribution(name, want, got):
    """Per-tensor check against eager: bitwise where eager is deterministic, else std and a two-sample KS test."""
    from scipy import stats

    torch.manual_seed(123)
    if torch.equal(want, got):
        return
    w, g = want.detach().double().flatten(), got.detach().double().flatten()
    assert w.numel() >= 64, f"{name}: a small tensor differs from eager"
    assert abs(g.std() / w.std() - 1) < 0.25, f"{name}: std {g.std():.4g} vs eager {w.std():.4g}"
    assert stats.ks_2samp(w.numpy(), g.numpy()).pvalue > 1e-4, name


def _deterministic(cls, cfg):
    torch.manual_seed(1)
    a = cls(cfg).state_dict()
    torch.manual_seed(2)
    b = cls(cfg).state_dict()
    return {k for k in a if torch.equal(a[k], b[k])}


@pytest.mark.parametrize("name", TIED)
def test_hf_policy_tied_head_keeps_the_input_embedding_init(name):
    cls, cfg = _tied_models()[name]
    eager = cls(cfg)  # from_config's order: initialize every module's own parameters, then tie
    emb, head = _emb_and_head(eager)
    assert head.weight is emb.weight
    m = cls(cfg)
    fastinit.apply(m, "hf", seed=SEED)
    memb, mhead = _emb_and_head(m)
    assert mhead.weight is memb.weight
    pad = getattr(emb, "padding_idx", None)
    if pad is not None and emb.weight[pad].eq(0).all():  # eager zeroes the pad row: so must fastinit
        assert memb.weight[pad].eq(0).all()  # the head's spec used to win and redraw it
    _same_distribution(name, emb.weight, memb.weight)  # ModernBERT's head std differs from its embedding's


@pytest.mark.parametrize("name", TIED)
def test_empty_init_then_materialize_is_eager_from_config(name):
    cls, cfg = _tied_models()[name]
    deterministic = _deterministic(cls, cfg)
    eager = cls(cfg)
    with fastinit.empty_init(keep_numel=0):
        m = cls(cfg)
    fastinit.materialize(m, "cpu", seed=SEED)
    assert all(r.backend != "torch" for r in fastinit.last_report())  # fused: nothing through torch's RNG
    memb, mhead = _emb_and_head(m)
    assert mhead.weight is memb.weight
    se, sm = eager.state_dict(), m.state_dict()
    assert list(se) == list(sm)
    for k in se:
        if k in deterministic:
            assert torch.equal(se[k], sm[k]), k  # pad rows, norms, biases, sinusoidal tables, rotary buffers
        else:
            _same_distribution(k, se[k], sm[k])


def test_whisper_sinusoidal_positions_are_copied_exactly():
    cls, cfg = _tied_models()["whisper"]
    eager = cls(cfg)
    want = eager.model.encoder.embed_positions.weight
    with fastinit.empty_init(keep_numel=0):
        m = cls(cfg)
    fastinit.materialize(m, "cpu", seed=SEED)
    assert torch.equal(m.model.encoder.embed_positions.weight, want)
    a = cls(cfg)
    fastinit.apply(a, "hf", seed=SEED)
    assert torch.equal(a.model.encoder.embed_positions.weight, want)


@contextlib.contextmanager
def init_empty_weights():
    """accelerate's init_empty_weights, replicated: register_parameter patched to re-create each parameter on meta."""
    old = torch.nn.Module.register_parameter

    def register_parameter(module, name, param):
        old(module, name, param)
        if param is not None:
            p = module._parameters[name]
            kwargs = p.__dict__
            module._parameters[name] = type(p)(p.to("meta"), requires_grad=p.requires_grad)
            module._parameters[name].__dict__.update(kwargs)

    torch.nn.Module.register_parameter = register_parameter
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = old


@pytest.mark.parametrize("name", ["llama", "bert", "opt"])
@pytest.mark.parametrize("policy", ["hf", "default"])
def test_init_empty_weights_then_materialize_reties(name, policy):
    cls, cfg = _tied_models()[name]
    with init_empty_weights():
        m = cls(cfg)
    emb, head = _emb_and_head(m)
    assert emb.weight.is_meta and head.weight is not emb.weight  # the meta build broke the tie
    fastinit.materialize(m, "cpu", policy, seed=SEED)
    emb, head = _emb_and_head(m)
    assert head.weight is emb.weight and not emb.weight.is_meta
    assert emb.weight[emb.padding_idx].eq(0).all()
    if policy == "hf":
        want = torch.empty_like(emb.weight)
        ename = next(n for n, p in m.named_parameters() if p is emb.weight)
        std = getattr(cfg, "initializer_range", None) or cfg.init_std  # OPT names it init_std
        fastinit.init.normal_(want, 0.0, std, seed=SEED, key=fastinit.key_for(ename))
        want[emb.padding_idx] = 0
        assert torch.equal(emb.weight.detach(), want)
