"""Recording real init code: any block (fastinit.recording), replaced memory, init functions through any reference,
temporaries and copies, generator=, prefix=, threads. Small from-scratch replicas of the framework patterns.

The acceptance pattern: scramble the tensors to a sentinel, record, and compare under two torch.manual_seed values
(bitwise equal, torch's global RNG untouched, every launch fused); values are checked against fastinit.init with the
tensor's key (the same stream, bitwise) and against eager torch (constants bitwise, random ones by distribution).
"""

import functools
import math
import sys
import threading

import pytest
import scipy.stats as st
import torch
from torch import nn
from torch.nn.init import trunc_normal_ as imported_trunc_normal_  # taken at import time, as framework modules do

import fastinit
from fastinit.keys import key_for

SENTINEL = 1.0e29
INIT_NAMES = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
              "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
ORIGINAL_INIT = {n: getattr(torch.nn.init, n) for n in INIT_NAMES}
ORIGINAL_CODE = {n: f.__code__ for n, f in ORIGINAL_INIT.items()}
TORCH_INIT_FUNCTIONS = dict(ORIGINAL_INIT)  # transformers-style copy of the functions, captured before recording


def scramble(model: nn.Module) -> None:
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point() and not t.is_meta:
                t.fill_(SENTINEL)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in list(model.named_parameters()) + list(model.named_buffers())}


def under_two_seeds(make, run) -> dict[str, torch.Tensor]:
    """Build with make(), scramble, run(model) under two torch.manual_seed values: bitwise equal, RNG untouched,
    every launch fused, no sentinel left. Returns the values."""
    results = []
    for s in (1, 2):
        torch.manual_seed(s)
        model = make()
        scramble(model)
        rng = torch.get_rng_state()
        run(model)
        assert torch.equal(torch.get_rng_state(), rng), "torch's global RNG was consumed"
        report = fastinit.last_report()
        assert report and all(r.backend != "torch" for r in report), report
        values = state(model)
        for n, v in values.items():
            assert n.endswith("left_alone") or not (v == SENTINEL).any(), f"{n} left unwritten"
        results.append(values)
    for n in results[0]:
        assert torch.equal(results[0][n], results[1][n]), n
    return results[0]


def stream(shape, fn, name, seed, **kwargs) -> torch.Tensor:
    """What fastinit's stream gives tensor ``name`` for an init call: fastinit.init with its key."""
    t = torch.empty(shape)
    getattr(fastinit.init, fn)(t, **kwargs, seed=seed, key=key_for(name))
    return t


def same_distribution(a: torch.Tensor, b: torch.Tensor) -> None:
    assert st.ks_2samp(a.flatten().numpy(), b.flatten().numpy()).pvalue > 1e-4


# ---- 1. any block ----------------------------------------------------------------------------------

class TitanBlock(nn.Module):
    """torchtitan / OLMo style: one model-level init_weights, with a partial captured in the config."""

    def __init__(self, d=32, init_std=0.02):
        super().__init__()
        self.wq = nn.Linear(d, d, bias=False)
        self.w_out = nn.Linear(d, 2 * d)
        self.norm = nn.RMSNorm(d)
        self.init_fn = functools.partial(nn.init.trunc_normal_, std=init_std)  # before any recording
        self.register_buffer("freqs_cis", torch.empty(4, 8, dtype=torch.complex64), persistent=False)

    def init_weights(self):
        freqs = 1.0 / (10000 ** (torch.arange(0, 16, 2)[:8].float() / 16))
        self.freqs_cis = torch.polar(torch.ones(4, 8), torch.outer(torch.arange(4).float(), freqs))  # reassigned
        self.init_fn(self.wq.weight)
        imported_trunc_normal_(self.w_out.weight, mean=0.0, std=0.01, a=-0.03, b=0.03)
        nn.init.zeros_(self.w_out.bias)
        self.norm.reset_parameters()


def test_recording_block_is_fused_deterministic_and_equal_to_the_stream():
    values = under_two_seeds(TitanBlock, lambda m: _record(m, m.init_weights, seed=11))
    assert torch.equal(values["wq.weight"], stream((32, 32), "trunc_normal_", "wq.weight", 11, std=0.02))
    assert torch.equal(values["w_out.weight"], stream((64, 32), "trunc_normal_", "w_out.weight", 11,
                                                      std=0.01, a=-0.03, b=0.03))
    eager = TitanBlock()
    torch.manual_seed(0)
    eager.init_weights()  # torch itself, the oracle
    assert torch.equal(values["w_out.bias"], eager.w_out.bias.detach())
    assert torch.equal(values["freqs_cis"], eager.freqs_cis)
    assert torch.equal(values["norm.weight"], eager.norm.weight.detach())
    assert values["w_out.weight"].abs().max() <= 0.03
    same_distribution(values["wq.weight"], eager.wq.weight.detach())


def _record(model, block, **kwargs):
    with fastinit.recording(model, **kwargs):
        block()


def test_recording_writes_nothing_when_the_block_raises_or_the_plan_fails():
    m = TitanBlock()
    scramble(m)
    before = state(m)
    with pytest.raises(KeyError, match="boom"):
        with fastinit.recording(m, seed=1):
            m.init_weights()
            raise KeyError("boom")
    with pytest.raises(ValueError, match="unknown backend"):
        with fastinit.recording(m, seed=1, backend="gpu9000"):
            m.init_weights()
    for n, v in m.named_parameters():  # (freqs_cis is reassigned by the block itself, not written by fastinit)
        assert torch.equal(v, before[n]), n
    assert_unpatched()


def assert_unpatched():
    for n, f in ORIGINAL_INIT.items():
        assert getattr(torch.nn.init, n) is f and f.__code__ is ORIGINAL_CODE[n], n


def test_hf_post_init_style_block_with_transformers_init_functions():
    """transformers' own init copies (ModernBERT's trunc_normal_) are recorded whole: no rejection loop, no RNG."""
    def make():
        return nn.Sequential(nn.Linear(16, 16), nn.Embedding(10, 16, padding_idx=0))

    hf_init = pytest.importorskip("transformers.initialization")

    def post_init(m):
        with fastinit.recording(m, seed=3):
            hf_init.trunc_normal_(m[0].weight, mean=0.0, std=0.05, a=-0.1, b=0.1)
            hf_init.zeros_(m[0].bias)
            TORCH_INIT_FUNCTIONS["normal_"](m[1].weight, std=0.02)
            m[1].weight.data[0].zero_()

    values = under_two_seeds(make, post_init)
    assert torch.equal(values["0.weight"], stream((16, 16), "trunc_normal_", "0.weight", 3, std=0.05, a=-0.1, b=0.1))
    ref = stream((10, 16), "normal_", "1.weight", 3, std=0.02)
    ref[0] = 0
    assert torch.equal(values["1.weight"], ref)


def test_another_mode_inside_the_block_is_fine():
    def block(m):
        with fastinit.recording(m, seed=2), torch.device("cpu"):  # torch.device is a TorchFunctionMode
            nn.init.normal_(m.weight)
            with torch.no_grad():
                m.weight.mul_(2)  # read: written on the spot, with the other mode above the recorder
            nn.init.zeros_(m.bias)

    values = under_two_seeds(lambda: nn.Linear(3, 4), block)
    assert torch.equal(values["weight"], stream((4, 3), "normal_", "weight", 2) * 2)


def test_writes_made_inside_a_block_by_fastinit_itself_keep_eager_order():
    m = nn.Linear(64, 64)
    with fastinit.recording(m, seed=0):
        nn.init.normal_(m.weight)
        fastinit.init.zeros_(m.weight)  # written now: the recorded normal_ comes first, as eagerly
    assert (m.weight == 0).all()
    with fastinit.recording(m, seed=0):
        nn.init.zeros_(m.weight)
        with fastinit.recording(m, seed=0):  # nested: the inner block's write comes after the outer's zeros_
            nn.init.normal_(m.weight, std=2.0)
    assert torch.equal(m.weight.detach(), stream((64, 64), "normal_", "weight", 0, std=2.0))


# ---- 2. memory replaced while recording --------------------------------------------------------------

class OlmoBlock(nn.Module):
    """OLMo style: init_weights allocates the (meta-built) module itself, then initializes it."""

    def __init__(self):
        super().__init__()
        self.w = nn.Linear(8, 8)
        self.register_buffer("scale", torch.empty(8), persistent=False)

    def init_weights(self, device="cpu"):
        self.to_empty(device=device)
        nn.init.normal_(self.w.weight, std=0.02)
        nn.init.zeros_(self.w.bias)
        self.scale.fill_(0.5)


def test_to_empty_inside_init_code_is_followed():
    def make():
        with torch.device("meta"):
            return OlmoBlock()

    values = under_two_seeds(make, lambda m: _record(m, m.init_weights, seed=4))
    assert torch.equal(values["w.weight"], stream((8, 8), "normal_", "w.weight", 4, std=0.02))
    assert (values["w.bias"] == 0).all() and (values["scale"] == 0.5).all()


def test_data_replaced_and_parameter_reassigned_inside_init_are_followed_through_apply():
    def init_fn(m):
        if isinstance(m, nn.Linear):
            m.weight.data = torch.empty_like(m.weight)  # new memory: the recorder follows the parameter
            nn.init.uniform_(m.weight, -0.1, 0.1)
            m.bias = nn.Parameter(torch.empty_like(m.bias))  # a new Parameter object in the same slot
            nn.init.constant_(m.bias, 0.25)

    values = under_two_seeds(lambda: nn.Sequential(nn.Linear(6, 5)), lambda m: fastinit.apply(m, init_fn, seed=9))
    assert torch.equal(values["0.weight"], stream((5, 6), "uniform_", "0.weight", 9, a=-0.1, b=0.1))
    assert (values["0.bias"] == 0.25).all()


def test_memory_replaced_and_never_written_is_refused():
    m = nn.Linear(4, 4)

    def init_fn(mod):
        if isinstance(mod, nn.Linear):
            mod.weight.data = torch.empty_like(mod.weight)  # eager code would leave garbage here

    with pytest.raises(RuntimeError, match="never wrote it.*weight"):
        fastinit.apply(m, init_fn, seed=0)


OLMO_DTENSOR = """
import os, socket, sys
import torch, torch.distributed as dist
from torch import nn
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), FASTINIT_QUIET="1")
dist.init_process_group("gloo", rank=0, world_size=1)
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor
import fastinit
mesh = init_device_mesh("cpu", (1,))

def apply_init(init_fun, x, *args, **kwargs):  # OLMo-core: init a full temporary, distribute it, copy the shard
    full_x = torch.zeros(x.shape, dtype=x.dtype, device=x.device)
    init_fun(full_x, *args, **kwargs)
    full_x = distribute_tensor(full_x, x.device_mesh, x.placements)
    with torch.no_grad():
        x.to_local().copy_(full_x.to_local())

def build(device):
    with torch.device(device):
        m = nn.Linear(8, 6)
    m.weight = nn.Parameter(distribute_tensor(m.weight.detach(), mesh, [Shard(0)]))
    return m

def init_weights(m):
    def fn(mod):
        if mod is m:
            g = torch.Generator().manual_seed(7)
            apply_init(nn.init.trunc_normal_, m.weight, std=0.02, a=-0.06, b=0.06, generator=g)
            nn.init.zeros_(m.bias)
    return fn

out = []
for seed in (1, 2):
    torch.manual_seed(seed)
    m = build("cpu")
    rng = torch.get_rng_state()
    fastinit.apply(m, init_weights(m), seed=3)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(r.backend != "torch" for r in fastinit.last_report())
    out.append(m.weight.to_local().detach().clone())
    meta = build("meta")
    fastinit.materialize(meta, "cpu", init_weights(meta), seed=3)  # the shard's local copy_ wrote all of it
    assert torch.equal(meta.weight.to_local(), out[-1])
assert torch.equal(out[0], out[1]) and out[0].abs().max() <= 0.06
dist.destroy_process_group()
print("ok")
"""


def test_olmo_core_dtensor_pattern_is_deterministic_and_fused():
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", OLMO_DTENSOR], capture_output=True, text=True, env=env,
                          timeout=300, cwd=root)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]


# ---- 3. references -----------------------------------------------------------------------------------

def test_trunc_normal_never_reaches_torchs_rejection_loop():
    calls = []
    real = {n: getattr(torch.Tensor, n) for n in ("uniform_", "normal_")}

    def spy(name):
        def fn(self, *a, **k):
            calls.append((name, tuple(self.shape)))
            return real[name](self, *a, **k)
        return fn

    m = TitanBlock()
    rng = torch.get_rng_state()
    for n in real:
        setattr(torch.Tensor, n, spy(n))
    try:  # w_out's bounds are 3 std: torch's normal_ + rejection loop would redraw some values with its RNG
        fastinit.apply(m, lambda mod: mod.init_weights() if mod is m else None, seed=2)
    finally:
        for n, f in real.items():
            setattr(torch.Tensor, n, f)
    assert calls == []  # torch's trunc_normal_ draws with normal_ (wide bounds) or uniform_ (narrow): never run
    assert torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(m.w_out.weight.detach(), stream((64, 32), "trunc_normal_", "w_out.weight", 2,
                                                       std=0.01, a=-0.03, b=0.03))


def test_transformers_modernbert_init_is_recorded_whole():
    """ModernBERT's _init_weights calls transformers' trunc_normal_ with 2-3 std bounds (torch's rejection path)."""
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ModernBertConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                        num_attention_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                        cls_token_id=1, sep_token_id=2)
    values = under_two_seeds(lambda: transformers.ModernBertModel(cfg), lambda m: fastinit.apply(m, "hf", seed=1))
    w = values["embeddings.tok_embeddings.weight"]
    std = cfg.initializer_range
    assert w[1:].abs().max() <= cfg.initializer_cutoff_factor * std + 1e-9


# ---- 4. temporaries and copies -----------------------------------------------------------------------

def test_channels_last_conv_temporary_passes_its_spec_on():
    """torch 2.13's _ConvNd inits a contiguous temporary and copies it in: fused, the contiguous conv's values."""
    def make():
        return nn.Conv2d(4, 8, 3).to(memory_format=torch.channels_last)

    values = under_two_seeds(make, lambda m: fastinit.apply(m, seed=5))
    plain = nn.Conv2d(4, 8, 3)
    fastinit.apply(plain, seed=5)
    assert torch.equal(values["weight"], plain.weight.detach())
    assert torch.equal(values["bias"], plain.bias.detach())


def test_a_temporary_the_code_drops_is_freed_and_one_it_keeps_is_written():
    import weakref

    m = nn.Conv2d(2, 4, 3).to(memory_format=torch.channels_last)
    kept, refs = [], []
    with fastinit.recording(m, seed=4):
        m.reset_parameters()  # its contiguous temporary is dropped when reset_parameters returns
        t = torch.empty(5)
        nn.init.uniform_(t)
        kept.append(t)
        d = torch.empty(6)
        nn.init.uniform_(d)
        refs.append(weakref.ref(d))
        del d
        assert refs[0]() is None  # not kept alive by the recorder
    assert sum(r.tensors for r in fastinit.last_report()) == 3  # weight, bias, the kept temporary
    assert torch.equal(kept[0], stream((5,), "uniform_", "<temporary 1>", 4))


class FusedQKV(nn.Module):
    """q/k/v temporaries initialized apart, concatenated and copied into one fused parameter."""

    def __init__(self, d=16):
        super().__init__()
        self.d = d
        self.wqkv = nn.Parameter(torch.empty(3 * d, d))
        self.reset_parameters()

    def reset_parameters(self):
        parts = [torch.empty(self.d, self.d) for _ in range(3)]
        for p in parts:
            nn.init.xavier_uniform_(p)
        with torch.no_grad():
            self.wqkv.copy_(torch.cat(parts))


def test_fused_qkv_from_temporaries_gets_the_stream_and_counts_as_written():
    values = under_two_seeds(lambda: nn.Sequential(FusedQKV()), lambda m: fastinit.apply(m, seed=6))
    w = values["0.wqkv"]
    bound = math.sqrt(6.0 / 32)
    assert w.abs().max() <= bound
    assert not torch.equal(w[:16], w[16:32])  # each temporary has its own key
    torch.manual_seed(0)
    same_distribution(w, FusedQKV().wqkv.detach())
    with fastinit.empty_init(keep_numel=0):
        meta = nn.Sequential(FusedQKV())
    fastinit.materialize(meta, "cpu", seed=6)  # the copy wrote all of it: no "the policy gives no value"
    assert torch.equal(meta[0].wqkv.detach(), w)


def test_temporaries_under_rules_default_are_written_and_parts_follow_the_rule():
    class PartInit(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(8, 4))
            self.left_alone = nn.Parameter(torch.full((6, 4), 7.0))

        def reset_parameters(self):
            nn.init.normal_(self.w[:4], std=0.5)  # parts of a tensor, each written on its own
            nn.init.normal_(self.w[4:], std=2.0)
            nn.init.normal_(self.left_alone[:3])  # a rule leaves this one alone: not even a part is written

    def make():
        return nn.Sequential(FusedQKV(), PartInit())

    rules = fastinit.Rules([("1.left_alone", None)])
    values = under_two_seeds(make, lambda m: fastinit.apply(m, rules, seed=6))
    default = make()
    fastinit.apply(default, seed=6)
    assert torch.equal(values["0.wqkv"], default[0].wqkv.detach())
    assert torch.equal(values["1.w"], default[1].w.detach())
    assert values["1.w"][:4].std() < 1.0 < values["1.w"][4:].std()
    assert (values["1.left_alone"] == SENTINEL).all()


def test_temporaries_keys_do_not_move_when_modules_are_added():
    a = nn.ModuleDict({"attn": FusedQKV()})
    b = nn.ModuleDict({"extra": FusedQKV(), "attn": FusedQKV()})
    fastinit.apply(a, seed=3)
    fastinit.apply(b, seed=3)
    assert torch.equal(a["attn"].wqkv, b["attn"].wqkv)
    assert not torch.equal(b["extra"].wqkv, b["attn"].wqkv)


INIT_METHOD = functools.partial(nn.init.normal_, std=0.02)  # megatron's config.init_method, built up front


class MegatronStyleLinear(nn.Module):
    """megatron-core's CPU init: a float32 master weight initialized by config.init_method, cast, split, and
    concatenated into the parameter with out=."""

    def __init__(self, n=8, d=4):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n, d))
        self.reset_parameters()

    def reset_parameters(self):
        n, d = self.weight.shape
        master = torch.empty(n, d, dtype=torch.float32, requires_grad=False)
        INIT_METHOD(master)
        master = master.to(dtype=self.weight.dtype)
        parts = torch.split(master, n // 2, dim=0)
        with torch.no_grad():
            torch.cat(parts, dim=0, out=self.weight)


def test_out_argument_counts_as_written_for_materialize():
    meta = MegatronStyleLinear().to_empty(device="meta")  # a meta model (its constructor needs real memory)
    rng = torch.get_rng_state()
    fastinit.materialize(meta, "cpu", seed=1)  # the constructor's cat(..., out=weight) wrote all of it
    assert torch.equal(torch.get_rng_state(), rng)
    assert meta.weight.std() < 0.05


class Sinusoids(nn.Module):
    """Whisper style: a position table written in full with copy_."""

    def __init__(self, n=6, d=8):
        super().__init__()
        self.pos = nn.Parameter(torch.empty(n, d))
        self.reset_parameters()

    def reset_parameters(self):
        n, d = self.pos.shape
        t = torch.arange(n)[:, None] / (10000 ** (torch.arange(d // 2) / (d // 2)))
        with torch.no_grad():
            self.pos.copy_(torch.cat([t.sin(), t.cos()], dim=1))


def test_parameter_written_by_copy_counts_as_initialized_by_materialize():
    with fastinit.empty_init(keep_numel=0):
        meta = Sinusoids()
    fastinit.materialize(meta, "cpu", seed=0)
    assert torch.equal(meta.pos.detach(), Sinusoids().pos.detach())  # eager construction, bitwise


def test_random_factories_in_init_code_are_temporaries_on_the_stream():
    def init_fn(m):
        if isinstance(m, nn.Linear):
            m.weight.data = torch.randn(m.weight.shape) * 0.02  # reads the temporary: written on the spot

    values = under_two_seeds(lambda: nn.Sequential(nn.Linear(6, 5, bias=False)),
                             lambda m: fastinit.apply(m, init_fn, seed=9))
    assert torch.equal(values["0.weight"], stream((5, 6), "normal_", "0.<temporary 0>", 9) * 0.02)


def test_normal_factory_installed_as_data_takes_the_parameters_key():
    def block(m):
        with fastinit.recording(m, seed=2):
            m.weight.data = torch.normal(0.0, 0.02, (4, 3))  # installed whole: the weight's own values
            m.bias.data = torch.normal(0.0, 1.0, size=(4,))

    values = under_two_seeds(lambda: nn.Linear(3, 4), block)
    assert torch.equal(values["weight"], stream((4, 3), "normal_", "weight", 2, std=0.02))
    assert torch.equal(values["bias"], stream((4,), "normal_", "bias", 2))


def test_torch_rng_ops_without_a_spec_warn():
    m = nn.Linear(3, 4)
    with pytest.warns(RuntimeWarning, match="torch.randint, which draws from torch's RNG"):
        with fastinit.recording(m, seed=2):
            m.bias.data = torch.randint(0, 3, (4,)).float()


class MambaLike(nn.Module):
    """Mamba style: A_log reassigned as a new Parameter computed from arange; a recomputed (rotary) buffer."""

    def __init__(self, n=4, d=6):
        super().__init__()
        self.n, self.d = n, d
        self.A_log = nn.Parameter(torch.empty(d, n))
        self.register_buffer("inv_freq", torch.empty(n), persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        a = torch.arange(1, self.n + 1, dtype=torch.float32).repeat(self.d, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.inv_freq = 1.0 / (10000 ** (torch.arange(self.n, dtype=torch.float32) / self.n))


def test_reassigned_parameter_with_computed_values_counts_as_initialized():
    with fastinit.empty_init(keep_numel=0):
        meta = MambaLike()
    fastinit.materialize(meta, "cpu", seed=0)
    eager = MambaLike()
    assert torch.equal(meta.A_log.detach(), eager.A_log.detach())
    assert torch.equal(meta.inv_freq, eager.inv_freq)


def test_transformers_whisper_positions_written_by_copy_count_under_materialize():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.WhisperConfig(vocab_size=64, d_model=16, encoder_layers=1, decoder_layers=1,
                                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                                     decoder_ffn_dim=32, max_source_positions=8, max_target_positions=8, num_mel_bins=4,
                                     pad_token_id=0, decoder_start_token_id=1, bos_token_id=1, eos_token_id=2)
    with fastinit.empty_init(keep_numel=0):
        meta = transformers.WhisperModel(cfg)
    fastinit.materialize(meta, "cpu", "hf", seed=0)  # HF's _init_weights copy_'s the sinusoids in: a value
    eager = transformers.WhisperModel(cfg)
    assert torch.equal(meta.encoder.embed_positions.weight, eager.encoder.embed_positions.weight)


# ---- 5. generator= -----------------------------------------------------------------------------------

def _two_inits(m, gen_seed, order):
    g = torch.Generator().manual_seed(gen_seed)
    for name in order:
        nn.init.normal_(getattr(m, name).weight, std=0.02, generator=g)


def test_generator_is_honoured_deterministically_whatever_the_order():
    def make():
        return nn.ModuleDict({"a": nn.Linear(8, 8, bias=False), "b": nn.Linear(8, 8, bias=False)})

    one = under_two_seeds(make, lambda m: _record(m, lambda: _two_inits(m, 5, "ab"), seed=1))
    swapped = under_two_seeds(make, lambda m: _record(m, lambda: _two_inits(m, 5, "ba"), seed=1))
    other = under_two_seeds(make, lambda m: _record(m, lambda: _two_inits(m, 6, "ab"), seed=1))
    for n in one:
        assert torch.equal(one[n], swapped[n]), n
        assert not torch.equal(one[n], other[n]), n
    # with generator=g, a tensor's values are those fastinit.apply(seed=g.initial_seed()) would give it
    assert torch.equal(one["a.weight"], stream((8, 8), "normal_", "a.weight", 5, std=0.02))


# ---- 6. prefix= --------------------------------------------------------------------------------------

def test_prefix_gives_a_submodule_its_names_in_the_whole_model():
    def make():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3)))

    whole, part, rec = make(), make(), make()
    fastinit.apply(whole, seed=8)
    fastinit.apply(part[1], seed=8, prefix="1")
    with fastinit.recording(rec[1], seed=8, prefix="1."):
        rec[1][0].reset_parameters()
        rec[1][1].reset_parameters()
    for n, t in whole[1].named_parameters():
        assert torch.equal(t, dict(part[1].named_parameters())[n]), n
        assert torch.equal(t, dict(rec[1].named_parameters())[n]), n
    alone = make()
    fastinit.apply(alone[1], seed=8)
    assert not torch.equal(alone[1][0].weight, whole[1][0].weight)


# ---- 7. threads --------------------------------------------------------------------------------------

def test_recording_affects_only_the_recording_thread():
    model = nn.Linear(8, 8)
    started, done = threading.Event(), threading.Event()
    seen = {}

    def recorder():
        with fastinit.recording(model, seed=1):
            nn.init.ones_(model.weight)
            started.set()
            done.wait(10)

    def other():
        started.wait(10)
        t = torch.full((5,), 3.0)
        torch.nn.init.zeros_(model.bias)  # a tensor the other thread is recording: written now, by torch
        seen["bias"] = model.bias.detach().clone()
        torch.nn.init.zeros_(t)
        seen["t"] = t.clone()
        g = torch.Generator().manual_seed(3)
        seen["normal"] = torch.nn.init.normal_(torch.empty(100), generator=g).clone()
        done.set()

    threads = [threading.Thread(target=recorder), threading.Thread(target=other)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert (seen["bias"] == 0).all() and (seen["t"] == 0).all()
    assert torch.equal(seen["normal"], torch.empty(100).normal_(generator=torch.Generator().manual_seed(3)))
    assert (model.weight == 1).all()


def test_concurrent_apply_leaves_torch_nn_init_unpatched():
    models = [nn.Sequential(nn.Linear(16, 16), nn.LayerNorm(16)) for _ in range(4)]
    errors = []

    def work(m):
        try:
            for i in range(50):
                fastinit.apply(m, seed=i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(m,)) for m in models]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert_unpatched()
    for m in models:
        torch.nn.init.zeros_(m[0].weight)
        assert (m[0].weight == 0).all()


# -- parameters that are views of one flat buffer (FSDP1's use_orig_params, megatron's contiguous param buffer) --------

def _flat_model(flat: bool) -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    if flat:  # every parameter becomes a view of one buffer, values kept
        base = torch.cat([p.detach().flatten() for p in m.parameters()])
        off = 0
        for mod in m:
            for k, p in list(mod._parameters.items()):
                mod._parameters[k] = nn.Parameter(base[off:off + p.numel()].view_as(p))
                off += p.numel()
        assert len({p.untyped_storage()._cdata for p in m.parameters()}) == 1
    return m


def _gpt_like(mod: nn.Module) -> None:
    if isinstance(mod, nn.Linear):
        nn.init.normal_(mod.weight, std=0.02)
        nn.init.zeros_(mod.bias)


def _recorded(m: nn.Module) -> None:
    with fastinit.recording(m, seed=1):
        m.apply(_gpt_like)


FLAT_RUNS = {
    "default": lambda m: fastinit.apply(m, seed=1),
    "preset": lambda m: fastinit.apply(m, "gpt2", seed=1),
    "callable": lambda m: fastinit.apply(m, _gpt_like, seed=1),
    "recording": _recorded,
}


@pytest.mark.parametrize("run", FLAT_RUNS.values(), ids=FLAT_RUNS.keys())
def test_views_of_one_flat_buffer_get_their_own_names_values(run):
    # each parameter is a tensor of its own: its values come from its name, as if it had memory of its own (it was
    # recorded as a part of the first parameter in the buffer, keyed by that one's name, silently)
    own, flat = _flat_model(False), _flat_model(True)
    run(own)
    run(flat)
    for (name, a), b in zip(own.named_parameters(), flat.parameters()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("write", [lambda t: nn.init.normal_(t), lambda t: t.uniform_()],
                         ids=["init.normal_", "uniform_"])
def test_a_random_write_of_the_flat_buffer_itself_is_refused(write):
    m = _flat_model(True)
    flat = torch.Tensor().set_(m[0].weight.untyped_storage())  # the whole buffer, as a tensor
    before = flat.clone()
    with pytest.raises(NotImplementedError, match=r"several parameters \(0.weight, 0.bias"):
        with fastinit.recording(m, seed=1):
            m.apply(_gpt_like)
            with torch.no_grad():
                write(flat)
    assert torch.equal(flat, before)  # nothing written


def test_reading_the_flat_buffer_sees_every_pending_value():
    m, ref = _flat_model(True), _flat_model(False)
    fastinit.apply(ref, _gpt_like, seed=1)
    flat = torch.Tensor().set_(m[0].weight.untyped_storage())
    seen = []
    with fastinit.recording(m, seed=1):
        m.apply(_gpt_like)
        seen.append(flat.clone())  # a read spanning every parameter: each is written first
    assert torch.equal(seen[0], torch.cat([p.detach().flatten() for p in ref.parameters()]))
