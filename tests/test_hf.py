"""The "hf" policy on small transformers models (skipped when transformers is not installed)."""

from __future__ import annotations

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
