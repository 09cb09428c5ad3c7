"""build_tables: every column as docs/STREAM.md defines it, row by row, for whole and sharded rows, all kinds."""

import random

import pytest
import torch

from fastinit import tables as T
from fastinit.specs import Constant, Dirac, KaimingUniform, Normal, Uniform, resolve_spec
from fastinit.tables import Resolved, ShardMap, build_tables

RESOLVED = [resolve_spec(Uniform(-0.5, 0.25), (4, 5)), resolve_spec(Normal(0.1, 2.0), (4, 5)),
            resolve_spec(KaimingUniform(), (6, 3)), Resolved(T.KIND_CONSTANT, (1.5, 0, 0, 0, 0, 0)),
            resolve_spec(Dirac(2), (4, 2, 3)), resolve_spec(Constant(0.0), (2,))]


def _row_by_row(rows, dtype):
    """The table as the columns are documented, one row at a time (independent of build_tables' vectorized path)."""
    table, params = [], []
    for numel, key, res, smap in rows:
        table.append([numel, T.to_signed64(key), res.kind, *smap.row(numel), *res.iparams])
        params.append(list(res.params))
    table = torch.tensor(table, dtype=torch.int64).reshape(len(rows), T.TABLE_COLS)
    return table, T._dtype_params(table[:, T.KIND], torch.tensor(params, dtype=torch.float64), dtype)


@pytest.mark.parametrize("sharded", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_columns_match_their_definition_row_by_row(sharded, dtype):
    rng = random.Random(7)
    rows = []
    for i in range(200):
        numel = rng.choice([0, 1, 5, 1000, 2**31 + 3])
        smap = ShardMap() if not sharded or i % 3 else ShardMap(base=rng.randrange(2**40), row_len=rng.choice([0, 3]),
                                                                 row_stride=rng.choice([0, 17]))
        rows.append((numel, rng.getrandbits(64), rng.choice(RESOLVED), smap))
    got_table, got_params = build_tables(rows, dtype)
    want_table, want_params = _row_by_row(rows, dtype)
    assert torch.equal(got_table, want_table)
    assert torch.equal(got_params, want_params)
    assert got_table.is_contiguous() and got_params.is_contiguous()


def test_keys_are_twos_complement_int64():
    table, _ = build_tables([(1, 2**64 - 1, RESOLVED[0], ShardMap()), (1, 2**63, RESOLVED[0], ShardMap()),
                             (1, 2**63 - 1, RESOLVED[0], ShardMap())])
    assert table[:, T.KEY].tolist() == [-1, -(2**63), 2**63 - 1]


def test_uniform_rows_without_contract_v2_bounds_are_refused():
    old = Resolved(T.KIND_UNIFORM, (0.0, 1.0, 0.0, 0.0, 0.0, 0.0))  # a v1 row: no clamp bounds, would give zeros
    with pytest.raises(ValueError, match="contract v2"):
        build_tables([(3, 1, RESOLVED[1], ShardMap()), (3, 2, old, ShardMap())])


def test_empty_rows_give_empty_tables():
    table, params = build_tables([])
    assert table.shape == (0, T.TABLE_COLS) and params.shape == (0, T.PARAM_COLS)
