"""A batch's logged rows, masked while the batch runs instead of after it.

Without scorers, judges or a schema, a row's logged values are final as soon as it has answered. The caller's
thread sits idle while the runner's loop waits on the network, so it builds and masks the ``batch_rows``
records meanwhile (``records.batch_rows``: the same redaction, fail closed), from the answered prefix of the
rows: at least ``MIN_ROWS`` rows a chunk while the batch runs, at most ``CHUNK_ROWS``. After the run only the
last rows are left to mask. The records are submitted only then, so an interrupted batch stages nothing.
The sink concatenates a batch's chunks in order, whatever their sizes.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops_lab.core import records
from llmops_lab.core.records import TOKENS_COLUMN

if TYPE_CHECKING:
    from llmops_lab.config import Settings

MIN_ROWS = 200  # a chunk built while rows still run: bounded per-chunk overhead (DataFrame slices, a record)


def logged_rows(results: Any) -> list[dict[str, Any]]:
    """The results rows as logged: JSON values (None for NaN), token logprobs never (output split in pieces)."""
    logged = results.drop(columns=TOKENS_COLUMN) if TOKENS_COLUMN in results.columns else results
    return logged.astype(object).where(logged.notna(), None).to_dict("records")


class EarlyRows:
    """Chunks of a batch's rows, built as their rows answer (``step`` from the caller's thread)."""

    def __init__(self, collector: Any, inputs: Any, settings: "Settings", batch_id: str, chunk_rows: int):
        self.collector, self.inputs, self.settings = collector, inputs, settings
        self.batch_id, self.chunk_rows = batch_id, chunk_rows
        self.n = len(inputs)
        self.answered = bytearray(self.n)  # set by the collector, in the runner's thread
        self.built = 0  # rows [0, built) are in self.records
        self.scanned = 0  # rows [0, scanned) have answered
        self.records: list[Any] = []

    def step(self, final: bool = False) -> None:
        while self.scanned < self.n and self.answered[self.scanned]:
            self.scanned += 1
        while self.scanned - self.built >= (1 if final else MIN_ROWS):
            stop = min(self.scanned, self.built + self.chunk_rows)
            part = self.collector.frame(self.inputs.iloc[self.built:stop], slice(self.built, stop))
            self.records.append(records.batch_rows(self.batch_id, len(self.records), logged_rows(part),
                                                   self.settings))
            self.built = stop

    def finish(self) -> list[Any]:
        """Every chunk, once every row has answered."""
        self.step(final=True)
        if self.built != self.n:
            raise RuntimeError(f"batch {self.batch_id}: {self.n - self.built} rows never answered")
        return self.records
