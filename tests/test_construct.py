"""Constructor recording: empty_init + materialize("default") ends as eager construction leaves each tensor.

Every pattern is a from-scratch replica of real init code: a PEFT-style LoRA adapter that zeroes
``lora_B`` in its constructor, megatron-style layers calling ``config.init_method(self.weight)`` (a
``functools.partial`` over ``nn.init.normal_`` captured before the build), a Whisper-style
sinusoidal table ``copy_``-ed into a parameter, partial writes and in-place reads in order.
Deterministic parts are compared bitwise with eager construction (torch is the oracle); random
parts bitwise with the fastinit stream under the parameter's name, and by a KS test against the
distribution eager code draws from.
"""

from __future__ import annotations

import functools
import math
import warnings

import pytest
import torch
from scipy import stats
from torch import nn

import fastinit
from fastinit.keys import key_for

SEED = 5
# captured before any recording, as megatron's TransformerConfig does
INIT_METHOD = functools.partial(nn.init.normal_, mean=0.0, std=0.02)
SCALED_INIT_METHOD = functools.partial(nn.init.normal_, mean=0.0, std=0.02 / math.sqrt(2 * 2))


class LoraLinear(nn.Module):
    """PEFT's LoraLayer: lora_A Kaiming, lora_B zero, both set in the constructor (not in reset_parameters)."""

    def __init__(self, d_in: int, d_out: int, r: int):
        super().__init__()
        self.base = nn.Linear(d_in, d_out)
        self.lora_A = nn.Linear(d_in, r, bias=False)
        self.lora_B = nn.Linear(r, d_out, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)


class ColumnParallelLinear(nn.Module):
    """megatron-core style: the layer initializes itself in its constructor with the config's init method."""

    def __init__(self, d_in: int, d_out: int, init_method):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        init_method(self.weight)
        self.bias = nn.Parameter(torch.empty(d_out))
        with torch.no_grad():
            self.bias.zero_()


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = ColumnParallelLinear(64, 256, INIT_METHOD)
        self.fc2 = ColumnParallelLinear(256, 64, SCALED_INIT_METHOD)


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's sinusoidal position table."""
    inc = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2))
    t = torch.arange(length)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1)


class Positions(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed_positions = nn.Embedding(64, 32)  # normal_ from reset_parameters, then overwritten
        with torch.no_grad():
            self.embed_positions.weight.copy_(sinusoids(64, 32))
        self.table = nn.Parameter(torch.empty(64, 32), requires_grad=False)
        self.table.data.copy_(sinusoids(64, 32) * 2)


class Ordered(nn.Module):
    """Partial writes and in-place reads, each of which must be replayed after the init, in order."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.empty(96, 48))
        nn.init.normal_(self.w)
        with torch.no_grad():
            self.w.mul_(0.1)
            self.w[0] = 1.0
            self.w[1].zero_()
            self.w[2:4].add_(3.0)
        self.v = nn.Parameter(torch.empty(96, 48))
        with torch.no_grad():
            self.v.copy_(self.w)  # a copy of another parameter's final value
            self.v.neg_()


def _materialized(cls, keep_numel=0, **kw):
    with fastinit.empty_init(keep_numel=keep_numel):
        m = cls()
    fastinit.materialize(m, "cpu", seed=SEED, **kw)
    return m


def _stream(shape, spec_fn, name, *args):
    ref = torch.empty(shape)
    spec_fn(ref, *args, seed=SEED, key=key_for(name))
    return ref


def test_lora_b_is_zero_and_lora_a_kaiming():
    m = _materialized(lambda: LoraLinear(64, 128, 8))
    assert torch.equal(m.lora_B.weight, torch.zeros(128, 8))  # "default" used to give it Kaiming
    want = _stream((8, 64), fastinit.init.kaiming_uniform_, "lora_A.weight", math.sqrt(5))
    assert torch.equal(m.lora_A.weight.detach(), want)
    bound = 1 / math.sqrt(64)  # kaiming_uniform_(a=√5) on fan_in 64
    assert stats.kstest(m.lora_A.weight.detach().flatten().numpy(), "uniform", (-bound, 2 * bound)).pvalue > 1e-3
    eager = LoraLinear(64, 128, 8)
    assert torch.equal(eager.lora_B.weight, m.lora_B.weight)


def test_megatron_init_method_partial_captured_before():
    m = _materialized(Mlp)
    assert torch.equal(m.fc1.weight.detach(), _stream((256, 64), fastinit.init.normal_, "fc1.weight", 0.0, 0.02))
    std2 = 0.02 / math.sqrt(4)
    assert torch.equal(m.fc2.weight.detach(), _stream((64, 256), fastinit.init.normal_, "fc2.weight", 0.0, std2))
    assert m.fc1.bias.eq(0).all() and m.fc2.bias.eq(0).all()
    assert stats.kstest(m.fc2.weight.detach().flatten().numpy(), "norm", (0, std2)).pvalue > 1e-3
    assert [r.backend for r in fastinit.last_report()] == ["cpu"]  # fused, not torch's RNG


def test_copy_initialized_tables_are_eager_bitwise():
    eager = Positions()
    m = _materialized(Positions)
    assert torch.equal(m.embed_positions.weight, eager.embed_positions.weight)
    assert torch.equal(m.table, eager.table) and not m.table.requires_grad


def test_partial_writes_and_reads_replay_in_order():
    m = _materialized(Ordered)
    want = _stream((96, 48), fastinit.init.normal_, "w")
    want.mul_(0.1)
    want[0] = 1.0
    want[1].zero_()
    want[2:4].add_(3.0)
    assert torch.equal(m.w.detach(), want)
    assert torch.equal(m.v.detach(), -want)


def test_independent_of_torch_seed_and_keep_numel():
    outs = []
    for torch_seed, keep in ((0, 0), (1, 10**9)):  # all meta / all real (small parameters stay real)
        torch.manual_seed(torch_seed)
        outs.append(_materialized(lambda: LoraLinear(64, 128, 8), keep_numel=keep).state_dict())
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


class Plain(nn.Module):
    """Only reset_parameters in its constructors: the record must be bitwise today's "default"."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(300, 64, padding_idx=3)
        self.conv = nn.Conv2d(3, 8, 3)
        self.lin = nn.Linear(64, 300)
        self.norm = nn.LayerNorm(64)
        self.bn = nn.BatchNorm1d(64)
        self.attn = nn.MultiheadAttention(64, 4)


@pytest.mark.parametrize("keep_numel", [0, 65536])
def test_reset_parameters_only_is_bitwise_default(keep_numel):
    want = fastinit.apply(Plain(), seed=SEED).state_dict()
    got = _materialized(Plain, keep_numel=keep_numel).state_dict()
    assert list(got) == list(want)
    assert [k for k in want if not torch.equal(got[k], want[k])] == []


def test_other_policies_still_apply():
    with fastinit.empty_init(keep_numel=0):
        m = LoraLinear(64, 128, 8)
    fastinit.materialize(m, "cpu", "xavier_uniform", seed=SEED)
    want = _stream((128, 8), fastinit.init.xavier_uniform_, "lora_B.weight")
    assert torch.equal(m.lora_B.weight.detach(), want)


def test_record_false_is_the_plain_meta_build():
    with fastinit.empty_init(keep_numel=0, record=False):
        m = LoraLinear(64, 128, 8)
    fastinit.materialize(m, "cpu", seed=SEED)  # each module's reset_parameters: lora_B gets Kaiming
    assert m.lora_B.weight.abs().max() > 0


class ReadsThenReinits(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.empty(32, 32))
        self.b = nn.Parameter(torch.empty(32, 32))
        nn.init.normal_(self.a)
        with torch.no_grad():
            self.b.copy_(self.a)  # b holds a's first draw ...
        nn.init.zeros_(self.a)  # ... which no longer exists once a is initialized again


class Derived(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.empty(32, 32))
        self.b = nn.Parameter(torch.empty(32, 32))
        nn.init.normal_(self.a)
        with torch.no_grad():
            self.b.copy_(self.a * 2)  # computed from a meta tensor: no value until materialize


@pytest.mark.parametrize("cls", [ReadsThenReinits, Derived])
def test_unreplayable_records_raise_before_writing(cls):
    with fastinit.empty_init(keep_numel=0):
        m = cls()
    with pytest.raises(RuntimeError, match="cannot be replayed exactly; pass an explicit policy: b "):
        fastinit.materialize(m, "cpu", seed=SEED)
    assert m.a.is_meta and m.b.is_meta  # nothing allocated, nothing written
    fastinit.materialize(m, "cpu", "xavier_normal", seed=SEED)  # an explicit policy still works
    assert m.b.std() > 0


def test_shape_errors_still_raise_like_eager():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(8, 8))
            with torch.no_grad():
                self.w.copy_(torch.ones(3))

    with pytest.raises(RuntimeError) as eager:
        Bad()
    with pytest.raises(RuntimeError) as rec, fastinit.empty_init(keep_numel=0):
        Bad()
    assert type(rec.value) is type(eager.value)


def test_partial_random_init_uses_the_stream():
    class Qkv(nn.Module):
        def __init__(self):
            super().__init__()
            self.wqkv = nn.Parameter(torch.empty(96, 32))
            for i in range(3):  # each of q, k, v initialized alone, as fused-qkv code does
                nn.init.normal_(self.wqkv[32 * i:32 * (i + 1)], std=0.02 * (i + 1))

    outs = []
    for s in (0, 1):
        torch.manual_seed(s)
        outs.append(_materialized(Qkv).wqkv.detach())
    assert torch.equal(outs[0], outs[1])  # not torch's RNG
    for i in range(3):
        part = outs[0][32 * i:32 * (i + 1)]
        want = torch.empty(32, 32)
        fastinit.init.normal_(want, 0.0, 0.02 * (i + 1), seed=SEED, key=key_for(f"wqkv[{i}]"))
        assert torch.equal(part, want)


def _initialize_affine_weight_cpu(weight, init_method, params_dtype=torch.float32):
    """megatron-core's CPU path, replicated: a master weight initialized, cast, split, concatenated and copied in."""
    master = torch.empty(weight.shape[0], weight.shape[1], dtype=torch.float, requires_grad=False)
    init_method(master)
    master = master.to(dtype=params_dtype)
    parts = torch.split(master, weight.shape[0], dim=0)[0::1]
    with torch.no_grad():
        weight.data.copy_(torch.cat(parts, dim=0).to_dense())


class CpuInitLinear(nn.Module):
    def __init__(self, d_in, d_out, init_method):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        _initialize_affine_weight_cpu(self.weight, init_method)


class FromTemporaries(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = CpuInitLinear(64, 128, INIT_METHOD)
        w = torch.empty(96, 32)
        nn.init.trunc_normal_(w, std=0.02)
        self.adopted = nn.Parameter(w)  # a parameter made from an initialized temporary
        self.oneliner = nn.Parameter(nn.init.normal_(torch.empty(64, 64), std=0.5))  # the temporary dies at once
        proj = torch.empty(32, 16)
        nn.init.normal_(proj)
        self.register_buffer("proj", proj)  # a buffer: real, so it gets its eager (torch) values
        half = torch.empty(64, 16)
        nn.init.uniform_(half)
        self.sliced = nn.Parameter(torch.empty(32, 16))
        with torch.no_grad():
            self.sliced.copy_(half[:32])  # a part of a temporary is read: it is written eagerly first


def test_temporaries_copied_into_parameters_are_fused_and_seed_independent():
    outs = []
    for s in (0, 1):
        torch.manual_seed(s)
        # a slice of a temporary is drawn by torch's RNG (eager's values): materialize says so, naming it
        with pytest.warns(RuntimeWarning, match="sliced"):
            outs.append(_materialized(FromTemporaries))
        assert [r.backend for r in fastinit.last_report()] == ["cpu"]
    a, b = outs
    assert torch.equal(a.fc.weight, b.fc.weight) and torch.equal(a.adopted, b.adopted)  # not torch's RNG
    assert torch.equal(a.fc.weight.detach(), _stream((128, 64), fastinit.init.normal_, "fc.weight", 0.0, 0.02))
    assert torch.equal(a.adopted.detach(), _stream((96, 32), fastinit.init.trunc_normal_, "adopted", 0.0, 0.02))
    assert torch.equal(a.oneliner.detach(), _stream((64, 64), fastinit.init.normal_, "oneliner", 0.0, 0.5))
    # what eager code reads (a buffer, a slice) has torch's values, drawn where eager drew them
    assert not torch.equal(a.proj, b.proj) and abs(float(a.proj.std()) - 1) < 0.2
    sliced = a.sliced.detach()
    assert 0 <= float(sliced.min()) and float(sliced.max()) <= 1 and float(sliced.std()) > 0.2


class RewrappedLinear(nn.Module):
    """torchtune's LoRALinear: a throwaway nn.Linear's weight re-wrapped as this module's own Parameter."""

    def __init__(self):
        super().__init__()
        linear = nn.Linear(64, 96)
        self.register_parameter("weight", nn.Parameter(linear.weight))
        self.register_parameter("bias", nn.Parameter(linear.bias))


@pytest.mark.parametrize("keep_numel", [0, 65536])
def test_a_parameter_rewrapped_takes_the_record_over(keep_numel):
    m = _materialized(RewrappedLinear, keep_numel=keep_numel)
    want = _stream((96, 64), fastinit.init.kaiming_uniform_, "weight", math.sqrt(5))
    assert torch.equal(m.weight.detach(), want)  # was left with the garbage of the deferred init
    assert float(m.bias.detach().abs().max()) <= 1 / 8 and float(m.bias.detach().std()) > 0


class FactoryValues(nn.Module):
    """Parameters made by constant factories, large enough to go to meta: their values must not be lost."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(64))  # torchtune's RMSNorm
        self.pos_embed = nn.Parameter(torch.zeros(1, 197, 384))  # ViT: above keep_numel
        self.gamma = nn.Parameter(torch.full((384,), 1e-5))  # layer scale
        shifted = torch.zeros(4, 8)
        shifted[0] = 3.0  # written after the factory: no longer a constant
        self.shifted = nn.Parameter(shifted)


def test_constant_factories_keep_their_values_on_meta():
    eager = FactoryValues()
    with fastinit.empty_init(keep_numel=0):
        m = FactoryValues()
    assert m.pos_embed.is_meta
    with pytest.raises(RuntimeError, match="no value to these parameters that were on the meta device.*: shifted"):
        fastinit.materialize(m, "cpu", seed=SEED)  # its value was not a constant: lost on meta, and said so
    with fastinit.empty_init(keep_numel=0):
        m = FactoryValues()
    fastinit.materialize(m, "cpu", seed=SEED, strict=False)
    for name in ("scale", "pos_embed", "gamma"):
        assert torch.equal(getattr(m, name), getattr(eager, name)), name


class SsmMixer(nn.Module):
    """Mamba's mixer: a table made on the parameter's own device, its log copied in (meta under empty_init)."""

    def __init__(self):
        super().__init__()
        self.A_log = nn.Parameter(torch.empty(128, 16))
        self.D = nn.Parameter(torch.empty(128))
        with torch.no_grad():
            a = torch.arange(1, 17, dtype=torch.float32, device=self.A_log.device)[None, :].expand(128, -1)
            self.A_log.copy_(torch.log(a.contiguous()))
            nn.init.ones_(self.D)


def test_tables_made_on_the_parameters_device_are_real():
    eager = SsmMixer()
    m = _materialized(SsmMixer)
    assert torch.equal(m.A_log, eager.A_log) and torch.equal(m.D, eager.D)
    with torch.device("meta"), fastinit.empty_init():
        assert torch.empty(3).is_meta  # an explicit meta build inside the block stays meta


def test_other_threads_are_not_recorded():
    import threading

    seen = {}

    def other():
        t = torch.empty(1000)
        nn.init.normal_(t)  # runs now, with torch's RNG, whatever the recording thread does
        seen["std"] = float(t.std())

    with fastinit.empty_init():
        th = threading.Thread(target=other)
        th.start()
        th.join()
    assert 0.8 < seen["std"] < 1.2


from torch.nn.init import xavier_normal_ as _xavier_normal_taken_at_import  # noqa: E402


class InitByReference(nn.Module):
    """Constructor init through references taken before recording: a from-import, a partial, a temporary."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(1024, 128)  # over keep_numel: meta
        _xavier_normal_taken_at_import(self.emb.weight)
        self.small = nn.Parameter(torch.empty(64, 32))  # kept real
        functools.partial(nn.init.kaiming_normal_, mode="fan_out")(self.small)
        tmp = torch.empty(64, 32)
        functools.partial(nn.init.xavier_uniform_, gain=2.0)(tmp)
        self.copied = nn.Parameter(torch.empty(64, 32))
        with torch.no_grad():
            self.copied.copy_(tmp)


def test_init_functions_reached_through_any_reference_are_recorded_in_constructors():
    # torch 2.13's xavier_*/kaiming_normal_ have no __torch_function__ hook: only the code-object trampolines
    # (fastinit.intercept) see calls through references, so the constructor recorder uses them too
    outs = []
    for s in (1, 2):
        torch.manual_seed(s)
        with fastinit.empty_init():
            m = InitByReference()
        fastinit.materialize(m, "cpu", seed=SEED)
        assert {r.backend for r in fastinit.last_report()} == {"cpu"}
        outs.append(m)
    for name in ("emb.weight", "small", "copied"):
        assert torch.equal(outs[0].get_parameter(name), outs[1].get_parameter(name)), name  # not torch's RNG
    assert torch.equal(outs[0].emb.weight.detach(), _stream((1024, 128), fastinit.init.xavier_normal_, "emb.weight"))
    assert torch.equal(outs[0].small.detach(), _stream((64, 32), functools.partial(
        fastinit.init.kaiming_normal_, mode="fan_out"), "small"))
    eager = InitByReference()
    bound = 2.0 * math.sqrt(6.0 / (64 + 32))
    assert float(outs[0].copied.abs().max()) <= bound and float(outs[0].copied.std()) > 0.5 * bound / math.sqrt(3)
    assert abs(float(outs[0].copied.std()) / float(eager.copied.std()) - 1) < 0.1


class WeightNormed(nn.Module):
    """A parametrization computed at construction from a kept-real weight whose random init is deferred."""

    def __init__(self):
        super().__init__()
        self.conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(32, 32, 16, padding=8, groups=4), dim=2)


def test_values_computed_from_a_deferred_init_are_refused_not_left_garbage():
    # weight norm's g = |v| is computed in the constructor from the kept-real weight, whose kaiming init
    # materialize writes later: eager's g is unknown, so strict materialize refuses it, naming it
    with fastinit.empty_init():
        m = WeightNormed()
    rng = torch.get_rng_state()
    with pytest.raises(RuntimeError, match=r"gives no value.*parametrizations\.weight\.original0"):
        fastinit.materialize(m, "cpu", seed=SEED)
    assert torch.equal(torch.get_rng_state(), rng)
    with fastinit.empty_init():
        m = WeightNormed()
    with pytest.warns(RuntimeWarning, match="original0"):
        fastinit.materialize(m, "cpu", seed=SEED, strict=False)


class CatOut(nn.Module):
    """Older Megatron-LM's CPU init: a master weight split and concatenated into the parameter with out=."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(64, 32))
        master = torch.empty(64, 32)
        nn.init.normal_(master, std=0.02)
        with torch.no_grad():
            torch.cat(torch.split(master, 32), dim=0, out=self.weight)


def test_an_out_op_into_a_parameter_is_recorded_and_its_torch_draws_are_named():
    torch.manual_seed(0)
    eager = CatOut().weight.detach()
    torch.manual_seed(0)
    with fastinit.empty_init():
        m = CatOut()
    with pytest.warns(RuntimeWarning, match="drawn from torch's RNG.*weight"):  # read by cat before any copy
        fastinit.materialize(m, "cpu", seed=SEED)
    assert torch.equal(m.weight.detach(), eager)  # eager's values, drawn where eager drew them


class ReRegistered(nn.Module):
    """PEFT's LoRA embedding: a ParameterDict entry made from torch.randn, initialized, then registered again
    (``d[k] = d[k].to(device)`` returns the same Parameter)."""

    def __init__(self):
        super().__init__()
        self.base = nn.Embedding(10, 16)
        self.lora_A = nn.ParameterDict()
        self.lora_A["default"] = nn.Parameter(torch.randn(4, 16))
        nn.init.normal_(self.lora_A["default"])
        self.lora_A["default"] = self.lora_A["default"].to(self.base.weight.device)


def test_a_parameter_registered_again_keeps_its_record():
    # registering the same memory again neither refuses it (its init is recorded) nor calls it torch's draws
    outs = []
    for s in (1, 2):
        torch.manual_seed(s)
        with fastinit.empty_init():
            m = ReRegistered()
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            fastinit.materialize(m, "cpu", seed=SEED)
        outs.append(m.lora_A["default"].detach().clone())
    assert torch.equal(outs[0], outs[1])
    assert torch.equal(outs[0], _stream((4, 16), fastinit.init.normal_, "lora_A.default"))
