"""The sidebar's run detail of a conversation turn: what listing the conversation's turns adds, server side.

Measures ``llmops_lab.server.runs.run_detail`` (what ``GET llmops-lab/api/runs/<id>`` runs) for a turn of a
conversation of ``--turns`` turns (one tag search, then each turn's ``messages.json`` and ``output.md`` read
in place) against the detail of a run that is no turn, in the same store and the same run (the baseline).
The runs are written through MlflowClient with the tags and artifacts a turn's writer logs.

    .venv/bin/python benchmarks/conversation_detail.py [--turns 20] [--calls 30]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _run(client, exp_id: str, name: str, tags: dict[str, str], messages: list[dict[str, str]], output: str) -> str:
    run = client.create_run(exp_id, run_name=name, tags={"llmops.kind": "single", **tags})
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "messages.json").write_text(json.dumps(messages))
        (Path(tmp) / "output.md").write_text(output)
        (Path(tmp) / "prompt.txt").write_text("\n".join(m["content"] for m in messages))
        client.log_artifacts(run.info.run_id, tmp)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()

    from llmops_lab.config import load_settings
    from llmops_lab.server import runs
    from llmops_lab.server.stores import Store
    from llmops_lab.tracking.clients import client_for, migrate_store

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "llmops.toml").write_text("")
        uri = f"sqlite:///{tmp}/mlflow.db"
        migrate_store(uri)
        client = client_for(uri)
        exp_id = client.create_experiment("bench", artifact_location=f"{tmp}/artifacts")
        conversation, history, turn_ids = uuid.uuid4().hex, [], []
        for n in range(1, args.turns + 1):
            question = f"Question {n}: " + "what about the order? " * 10
            sent = [*history, {"role": "user", "content": question}]
            answer = f"Answer {n}: " + "it is on its way. " * 20
            turn_ids.append(_run(client, exp_id, f"turn-{n}", {"llmops.conversation": conversation,
                                                              "llmops.conversation_name": "support",
                                                              "llmops.turn": str(n)}, sent, answer))
            history = [*sent, {"role": "assistant", "content": answer}]
        lone = _run(client, exp_id, "lone", {}, [{"role": "user", "content": "hi"}], "hello")
        store = Store(load_settings(start=Path(tmp)), uri, "bench")

        def median_ms(run_id: str) -> float:
            times = []
            for _ in range(args.calls):
                start = time.perf_counter()
                detail = runs.run_detail(store, run_id, client)
                times.append((time.perf_counter() - start) * 1000)
            assert (detail["conversation"] is None) == (run_id == lone)
            return statistics.median(times)

        median_ms(lone)  # warm: imports, first queries
        baseline = median_ms(lone)
        middle = median_ms(turn_ids[len(turn_ids) // 2])
        print(f"run detail, a run that is no turn (baseline): {baseline:.1f} ms (median of {args.calls})")
        print(f"run detail, a turn of a {args.turns}-turn conversation: {middle:.1f} ms "
              f"(median of {args.calls}); ratio {middle / baseline:.2f}x, +{middle - baseline:.1f} ms")


if __name__ == "__main__":
    main()
