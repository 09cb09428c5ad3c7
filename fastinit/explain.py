"""``fastinit.explain``: what every tensor of a model will get, as a table, without writing anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .describe import describe, spec_call
from .dryrun import PlannedTensor, dry_run
from .keys import key_for
from .table import RowsReport, fmt, markdown_table, text_table

__all__ = ["ExplainRow", "ExplainReport", "explain"]

EAGER_NOTE = "written eagerly when init code reads it"


@dataclass
class ExplainRow:
    """One tracked tensor: its spec resolved to numbers, key and backend."""

    name: str
    shape: tuple[int, ...]  # the global shape (a DTensor's unsharded shape)
    dtype: str
    device: str
    spec: str  # the torch.nn.init call it stands for ('' when the policy does not write it)
    distribution: str  # uniform, normal, trunc_normal, constant, eye, dirac, orthogonal, sparse, empty, ''
    numbers: dict[str, float] = field(default_factory=dict)  # a/b, mean/std(/a/b), val, ... as the spec gives them
    fan_in: int | None = None
    fan_out: int | None = None
    gain: float | None = None
    key: int = 0  # the stream key (blake2b of the name)
    backend: str = ""  # the backend apply would use ('' for a meta tensor, which has none)
    passed_over: tuple[str, ...] = ()  # why auto did not take the faster backends it tried first
    aliases: tuple[str, ...] = ()  # tied names, shown once under the first
    post_writes: int = 0  # partial constant writes replayed after the fused write (padding rows, ...)
    eager: bool = False  # written eagerly during recording because init code read it
    note: str = ""

    def numbers_text(self) -> str:
        """'a=-0.125 b=0.125'."""
        return " ".join(f"{k}={fmt(v, 6)}" for k, v in self.numbers.items())


def _note(p: PlannedTensor) -> str:
    parts = []
    if p.spec is None and not p.flushes:
        parts.append("written by init code with ops that are no spec" if p.written_by_init_code
                     else "not written by this policy (keeps its values)")
    if p.flushes:
        parts.append(EAGER_NOTE)
        if p.spec is not None:
            parts.append("then written again by the fused plan")
        elif p.changed_after_flush:
            parts.append("then changed in place by init code (its values are not the spec's)")
    if p.final_post_ops:
        parts.append(f"then {len(p.final_post_ops)} partial constant write(s) (e.g. padding rows)")
    if p.aliases:
        parts.append("tied: " + ", ".join(p.aliases))
    return "; ".join(parts)


def _row(p: PlannedTensor) -> ExplainRow:
    spec = p.spec if p.spec is not None else (p.flushes[-1].spec if p.flushes else None)
    entries = p.entries if p.spec is not None else (p.flush_entries[-1] if p.flush_entries else [])
    shape = tuple(p.stand_in.shape)
    t = p.tensor
    row = ExplainRow(name=p.name, shape=shape, dtype=str(t.dtype).replace("torch.", ""), device=str(t.device),
                     spec="" if spec is None else spec_call(spec), distribution="", key=key_for(p.name),
                     backend="+".join(dict.fromkeys(e.backend for e in entries if e.backend)),
                     passed_over=tuple(dict.fromkeys(r for e in entries for r in e.passed_over)),
                     aliases=p.aliases, post_writes=len(p.final_post_ops), eager=bool(p.flushes), note=_note(p))
    if spec is not None:
        d = describe(spec, shape)
        row.distribution, row.numbers = d.family, dict(d.numbers)
        row.fan_in, row.fan_out, row.gain = d.fan_in, d.fan_out, d.gain
    return row


class ExplainReport(RowsReport):
    """The rows of :func:`explain`; ``print(report)`` is a table, ``to_markdown()``/``to_dicts()`` give the data."""

    headers = ("name", "shape", "dtype", "distribution", "numbers", "fan_in", "fan_out", "gain", "key", "backend",
               "note")

    def __init__(self, rows: list[ExplainRow], planned: list[PlannedTensor] | None = None):
        self.rows = rows
        self.planned = planned or []

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, name: str) -> ExplainRow:
        for r in self.rows:
            if r.name == name or name in r.aliases:
                return r
        raise KeyError(name)

    def _cells(self) -> list[list[str]]:
        return [[r.name, "x".join(map(str, r.shape)) or "()", r.dtype, r.distribution or "-", r.numbers_text(),
                 fmt(r.fan_in), fmt(r.fan_out), fmt(r.gain), f"{r.key:016x}", r.backend, r.note] for r in self.rows]

    def __str__(self) -> str:
        return text_table(self.headers, self._cells())

    def to_markdown(self) -> str:
        """The table as Markdown."""
        return markdown_table(self.headers, self._cells())



def explain(model: nn.Module, policy: Any = "default", *, backend: str = "auto") -> ExplainReport:
    """What ``fastinit.apply(model, policy, backend=backend)`` would write, one row per tracked tensor; a dry run.

    Nothing is written: the policy is recorded on meta stand-ins of the model's tensors
    (``fastinit.dryrun``), then planned and validated on the real ones exactly as ``apply`` plans
    them (same specs, numbers, keys and backend choice; a bad spec raises the same error). Tensors
    the init code reads while recording (which ``apply`` writes eagerly at that point) are marked
    ``eager`` with the note "written eagerly when init code reads it". There is no torch
    equivalent; it answers "what will ``model.apply(init_weights)`` do to each tensor?".

    While it runs, the model's parameters and buffers are swapped for the stand-ins (and put back, with
    the ``_is_hf_initialized`` flags, whatever happens): do not use the model from another thread
    meanwhile. Tensors that init code reaches other than as a parameter or buffer of the model (a plain
    tensor attribute) are not swapped. Init code that needs the values it reads raises RuntimeError.
    """
    planned = dry_run(model, policy, backend)
    return ExplainReport([_row(p) for p in planned], planned)
