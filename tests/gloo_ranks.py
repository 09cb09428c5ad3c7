"""Run a function on N CPU ranks of a gloo process group (forked processes), for the sharded tests."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, fn: Callable, world: int, port: int, args: tuple) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), FASTINIT_QUIET="1")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def run_on_ranks(fn: Callable, world: int, *args: object) -> None:
    """``fn(rank, world, *args)`` on ``world`` forked ranks of a fresh gloo group; raises if any rank fails."""
    import torch.multiprocessing as mp

    mp.start_processes(_rank_main, args=(fn, world, _free_port(), args), nprocs=world, start_method="fork")
