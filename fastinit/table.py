"""Plain-text and Markdown tables for the explain and audit reports."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells escaped)."""
    esc = lambda c: c.replace("|", "\\|")
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def fmt(v: float | int | None, digits: int = 4) -> str:
    """A number for a table cell ('' for None)."""
    if v is None:
        return ""
    if isinstance(v, int):
        return str(v)
    return f"{v:.{digits}g}"


class RowsReport:
    """What explain's and audit's reports share: ``rows`` (dataclasses) and ``planned`` (the dry run's tensors)."""

    rows: list
    planned: list

    def plot(self, path: str, tensors: list[str] | None = None, max_panels: int = 12) -> int:
        """Histograms of the tensors' current values with each spec's density over them, as a PNG at ``path``.

        ``tensors``: name globs (default: the largest tensor of each distinct random distribution). Needs
        matplotlib (ImportError saying how to install it otherwise); returns the number of panels.
        """
        from .plot import plot_histograms, select

        return plot_histograms(select(self.planned, tensors, max_panels), path)

    def to_dicts(self) -> list[dict]:
        """One plain dict per row (JSON-serializable)."""
        from dataclasses import asdict

        return [asdict(r) for r in self.rows]
