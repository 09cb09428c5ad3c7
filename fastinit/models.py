"""Model shapes the benchmarks initialize: GPT-2 (small to XL) and LLaMA-style, built from plain torch.nn modules."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class GPT2Config:
    """GPT-2 shapes (XL: 48 layers, width 1600, ~1.56 B parameters with the tied head)."""

    n_layer: int = 48
    d_model: int = 1600
    vocab: int = 50257
    ctx: int = 1024


class GPT2Block(nn.Module):
    """One pre-norm GPT-2 block's parameters (attention projections, MLP, two LayerNorms)."""

    def __init__(self, d: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.ModuleDict({"c_attn": nn.Linear(d, 3 * d), "c_proj": nn.Linear(d, d)})
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.ModuleDict({"c_fc": nn.Linear(d, 4 * d), "c_proj": nn.Linear(4 * d, d)})


class GPT2(nn.Module):
    """GPT-2's parameter layout with the LM head tied to the token embedding (forward not needed here)."""

    def __init__(self, cfg: GPT2Config):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab, cfg.d_model)
        self.wpe = nn.Embedding(cfg.ctx, cfg.d_model)
        self.h = nn.ModuleList(GPT2Block(cfg.d_model) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        self._tied_weights_keys = {"lm_head.weight": "wte.weight"}  # {target: source}: the embedding's init wins


@dataclass(frozen=True)
class LlamaConfig:
    """LLaMA shapes (7B: 32 layers, width 4096, MLP 11008, vocab 32000; untied head)."""

    n_layer: int = 32
    d_model: int = 4096
    d_ff: int = 11008
    vocab: int = 32000
    n_heads: int = 32
    n_kv_heads: int | None = None  # grouped-query attention (None: as many as n_heads)
    tied: bool = False


class LlamaBlock(nn.Module):
    """One LLaMA block: RMSNorms, bias-free attention and SwiGLU MLP projections."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        d, f = cfg.d_model, cfg.d_ff
        kv = d // cfg.n_heads * (cfg.n_kv_heads or cfg.n_heads)
        self.input_layernorm = nn.RMSNorm(d)
        self.self_attn = nn.ModuleDict({"q_proj": nn.Linear(d, d, bias=False), "k_proj": nn.Linear(d, kv, bias=False),
                                        "v_proj": nn.Linear(d, kv, bias=False), "o_proj": nn.Linear(d, d, bias=False)})
        self.post_attention_layernorm = nn.RMSNorm(d)
        self.mlp = nn.ModuleDict({"gate_proj": nn.Linear(d, f, bias=False), "up_proj": nn.Linear(d, f, bias=False),
                                  "down_proj": nn.Linear(f, d, bias=False)})


class Llama(nn.Module):
    """LLaMA's parameter layout, with a rotary-frequency buffer made in the constructor."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.d_model)
        self.layers = nn.ModuleList(LlamaBlock(cfg) for _ in range(cfg.n_layer))
        self.norm = nn.RMSNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)
        if cfg.tied:
            self.lm_head.weight = self.embed_tokens.weight
            self._tied_weights_keys = {"lm_head.weight": "embed_tokens.weight"}  # {target: source}
        head_dim = cfg.d_model // cfg.n_heads
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)


MODELS = {
    "gpt2-xl": lambda: GPT2(GPT2Config()),
    "gpt2-large": lambda: GPT2(GPT2Config(n_layer=36, d_model=1280)),
    "gpt2-medium": lambda: GPT2(GPT2Config(n_layer=24, d_model=1024)),
    "gpt2": lambda: GPT2(GPT2Config(n_layer=12, d_model=768)),
    "gpt2-tiny": lambda: GPT2(GPT2Config(n_layer=2, d_model=64, vocab=1000, ctx=64)),
    "llama-7b": lambda: Llama(LlamaConfig()),
    # LLaMA-3.2-1B: grouped-query attention, tied embeddings (1.24 B parameters)
    "llama-1b": lambda: Llama(LlamaConfig(n_layer=16, d_model=2048, d_ff=8192, vocab=128256, n_heads=32,
                                          n_kv_heads=8, tied=True)),
    "llama-tiny": lambda: Llama(LlamaConfig(n_layer=2, d_model=64, d_ff=172, vocab=1000, n_heads=4)),
}


def construct(name: str) -> nn.Module:
    """The model ``name`` built as ``Model()`` is: allocated and initialized by torch where it is built."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]()


def build(name: str, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> nn.Module:
    """An *uninitialized* model of shape ``name``: built on meta, then given fresh memory on ``device``."""
    with torch.device("meta"):
        model = construct(name)
    model = model.to(dtype=dtype) if dtype != torch.float32 else model
    shared = _ties(model)
    model = model.to_empty(device=device)
    for module_name, attr, source in shared:  # to_empty may swap parameters, which unties them
        setattr(model.get_submodule(module_name), attr, model.get_parameter(source))
    return model


def _ties(model: nn.Module) -> list[tuple[str, str, str]]:
    """(module, attribute, first name) of every parameter that repeats an earlier one."""
    first: dict[int, str] = {}
    out = []
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in first:
            module_name, _, attr = name.rpartition(".")
            out.append((module_name, attr, first[id(p)]))
        else:
            first[id(p)] = name
    return out


def param_count(model: nn.Module) -> int:
    """Distinct parameter elements (tied weights once)."""
    return sum(p.numel() for p in model.parameters())


def describe(model: nn.Module) -> str:
    """'1.56 B params, 6.23 GB'-style summary."""
    n = param_count(model)
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
    if n >= 1e8:
        return f"{n / 1e9:.2f} B params, {nbytes / 1e9:.2f} GB"
    return f"{n / 1e6:.1f} M params, {nbytes / 1e6:.1f} MB"


