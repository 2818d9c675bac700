"""Rows masked while a batch runs (evaluation/early_rows.py) are logged exactly as rows masked after it."""
import pandas as pd

import llmops_lab
from llmops_lab import tracking
from llmops_lab.evaluation import batch as batch_mod

KEY = "sk-proj-" + "Q7f3Kx9LmN2pR4tV6wY8zA1bC3dE5gH7"


def captured(monkeypatch):
    seen = []
    submit = tracking.submit

    def spy(record, settings=None):
        seen.append(record)
        return submit(record, settings)

    monkeypatch.setattr(tracking, "submit", spy)
    return seen


def rows_of(records):
    chunks = [r for r in records if r["kind"] == "batch_rows"]
    assert [c["chunk"] for c in chunks] == list(range(len(chunks)))
    return [c["rows"] for c in chunks]


def test_early_chunks_log_the_same_rows(fake, monkeypatch):
    fake.latency_ms = 5
    texts = [f"review {i}: {'my key is ' + KEY if i % 97 == 3 else 'fine'}" for i in range(450)]
    df = pd.DataFrame({"text": texts, "n": range(450), "score": [i / 7 if i % 5 else None for i in range(450)]})
    seen = captured(monkeypatch)
    early = llmops_lab.batch("Classify: {{ text }} {{ n }}", df, concurrency=8, cache=False, progress=False)
    early_chunks = rows_of(seen)
    seen.clear()
    monkeypatch.setattr(batch_mod, "EARLY_ROWS_MAX", 0)  # the path after the run
    late = llmops_lab.batch("Classify: {{ text }} {{ n }}", df, concurrency=8, cache=False, progress=False)
    late_chunks = rows_of(seen)
    assert len(late_chunks) == 1 and len(early_chunks) > 1  # the early path built chunks while rows ran
    assert all(len(c) >= 200 for c in early_chunks[:-1])
    flat = [[{k: v for k, v in row.items() if k != "latency_ms"} for chunk in chunks for row in chunk]
            for chunks in (early_chunks, late_chunks)]
    assert len(flat[0]) == 450 and flat[0] == flat[1]
    assert not any(KEY in str(row) for row in sum(early_chunks, []))  # masked, input and echoed answer
    assert early["output"].tolist() == late["output"].tolist()
    assert llmops_lab.batch_run_id(early, timeout=60) and llmops_lab.batch_run_id(late, timeout=60)


def test_scored_batches_mask_after_the_run(fake, monkeypatch):
    seen = captured(monkeypatch)
    df = pd.DataFrame({"text": [f"r{i}" for i in range(5)], "label": ["x"] * 5})
    llmops_lab.batch("{{ text }}", df, scorers=["exact:label"], cache=False, progress=False)
    (rows,) = rows_of(seen)
    assert [r["exact_label"] for r in rows] == [0.0] * 5  # the score columns are in the logged rows
