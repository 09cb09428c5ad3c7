"""Constructor records replayed onto FSDP2-sharded meta models: each rank writes its shard of the unsharded values."""

from __future__ import annotations

import math
import os

import pytest
import torch
from gloo_ranks import run_on_ranks
from torch import nn

import fastinit

SEED = 21


class Adapter(nn.Module):
    """Whole inits and constant region writes in constructors: what can be replayed shard by shard."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(64, 32, padding_idx=5)  # normal_ + its padding row zeroed
        self.lora_A = nn.Linear(32, 8, bias=False)
        self.lora_B = nn.Linear(8, 32, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.w = nn.Parameter(torch.empty(40, 16))
        nn.init.normal_(self.w, std=0.02)
        with torch.no_grad():
            self.w[3] = 1.0


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.empty(40, 16))
        nn.init.normal_(self.w)
        with torch.no_grad():
            self.w.mul_(0.5)  # reads the values: cannot be replayed on a shard alone


def _worker(rank: int, world: int, out_dir: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    with fastinit.empty_init(keep_numel=0):
        m = Adapter()
    fully_shard(m, mesh=mesh)
    fastinit.materialize(m, "cpu", seed=SEED)
    full = {n: p.full_tensor().clone() for n, p in m.named_parameters()}
    with fastinit.empty_init(keep_numel=0):
        s = Scaled()
    fully_shard(s, mesh=mesh)
    try:
        fastinit.materialize(s, "cpu", seed=SEED)
        refused = ""
    except NotImplementedError as e:
        refused = str(e)
    if rank == 0:
        torch.save({"full": full, "refused": refused}, os.path.join(out_dir, "out.pt"))


@pytest.mark.parametrize("world", [2])
def test_fsdp_sharded_replay_is_the_unsharded_record(world, tmp_path):
    run_on_ranks(_worker, world, str(tmp_path))
    got = torch.load(os.path.join(tmp_path, "out.pt"))
    with fastinit.empty_init(keep_numel=0):
        ref = Adapter()
    fastinit.materialize(ref, "cpu", seed=SEED)
    want = {n: p.detach() for n, p in ref.named_parameters()}
    assert set(got["full"]) == set(want)
    assert [n for n in want if not torch.equal(got["full"][n], want[n])] == []
    assert want["lora_B.weight"].eq(0).all() and want["emb.weight"][5].eq(0).all() and want["w"][3].eq(1).all()
    assert "is sharded" in got["refused"] and "mul_" in got["refused"]
