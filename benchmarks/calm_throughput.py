"""CALM's throughput on Beam against Beam's own streaming detector, by number of keys; memory per key.

For 1, 10, 100 and 1000 series keys of a real NAB series (each key a copy shifted by a key-specific
offset, so no two keys are equal), on the DirectRunner (in-memory) in a fresh process each:

* ours: the whole CALM loop per key (ordering, warm-up fit of a small quantile MLP, one-step
  quantile forecasts, IQR flags, the rule judge standing in for the LLM, fine-tunes every 10 KEEP
  points, versioned artifacts and swaps), end to end including pipeline start-up;
* reference: Beam's ``AnomalyDetection(IQR(features=["x"]))`` on the same keyed points (a sliding
  quantile tracker per key: no forecaster, no judge, no fine-tune), the primitive Beam offers;
* memory per key: the pickled ``KeyState`` Beam stores per key, the artifact bytes on disk, and the
  process's peak RSS.

``--embedded`` adds one row with the embedded LLM judge (one key, 1,000 points: seconds per judgment on CPU).

Run (CPU; about 10 minutes on 2 cores):

    ANOMALYGRAPH_DATA_ROOTS='["../shared/data"]' nice .venv/bin/python benchmarks/calm_throughput.py
    nice .venv/bin/python benchmarks/calm_throughput.py --keys 1,10 --embedded
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from anomalygraph.core.tables import table_lines

SERIES = "NAB/data/realKnownCause/machine_temperature_system_failure.csv"
FORECASTER = {"context_length": 32, "horizon": 4, "hidden": 16, "epochs": 5, "threads": 1}
WARMUP = 100


EMBEDDED_POINTS = 1_000  # the LLM judge takes seconds per flag on this CPU: a short stream keeps the row minutes long


def points_per_key(keys: int, kind: str = "ours") -> int:
    if kind == "ours_embedded":
        return EMBEDDED_POINTS
    return max(150, 20_000 // keys)  # at least the warm-up (100) and 50 scored points per key


def keyed_points(data: Path, keys: int, per_key: int) -> list:
    from anomalygraph.data.loaders import load_series
    from anomalygraph.streaming.replay import series_points

    base = series_points(load_series(data / SERIES))[:per_key]
    return [p.model_copy(update={"key": f"k{k:04d}", "value": p.value + 0.1 * k}) for k in range(keys) for p in base]


def measure(kind: str, keys: int, data: Path) -> dict[str, float]:
    """Runs in the child process."""
    import apache_beam as beam

    points = keyed_points(data, keys, points_per_key(keys, kind))
    started = time.perf_counter()
    result: dict[str, float] = {"points": len(points)}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if kind == "reference":
            from apache_beam.ml.anomaly.detectors.iqr import IQR
            from apache_beam.ml.anomaly.transforms import AnomalyDetection

            rows = [(p.key, beam.Row(x=p.value)) for p in points]
            with beam.Pipeline() as pipe:
                (pipe | beam.Create(rows) | AnomalyDetection(IQR(features=["x"]))
                      | beam.Map(lambda r: json.dumps(r[1].predictions[0].score))
                      | beam.io.WriteToText(str(out / "scores"), num_shards=1, shard_name_template=""))
            result["scored"] = sum(1 for _ in (out / "scores").open())
        else:
            from anomalygraph.agents.judge import RuleJudge
            from anomalygraph.streaming.config import StreamConfig
            from anomalygraph.streaming.engine import CalmLoop, KeyState
            from anomalygraph.streaming.pipeline import read_output, run_replay
            from anomalygraph.streaming.store import ModelStore

            embedded = kind == "ours_embedded"
            config = StreamConfig(warmup=WARMUP, neighbours=5, finetune_history=400, forecaster_config=FORECASTER,
                                  judge="llm" if embedded else "rule")
            # the LLM judge holds a client (not picklable): the DoFn makes it in setup, as `stream --judge llm` does
            run_replay(points, config, out, judge=None if embedded else RuleJudge())
            result["scored"] = len(read_output(out, "scored"))
            result["flagged"] = sum(r["flagged"] for r in read_output(out, "scored"))
            result["judged"] = len(read_output(out, "judgments"))
            result["versions"] = len(read_output(out, "models"))
            result["artifact_kb_per_key"] = sum(f.stat().st_size for f in (out / "models").rglob("*") if f.is_file()) / 1024 / keys
            # the state Beam keeps per key, measured on the same loop outside Beam for one key
            loop, state = CalmLoop(config, ModelStore(out / "probe"), RuleJudge()), KeyState()
            for p in points[: points_per_key(keys, kind)]:
                list(loop.add(state, p))
                list(loop.release(state, p.key, p.timestamp))
            result["state_kb_per_key"] = len(pickle.dumps(state)) / 1024
    result["seconds"] = time.perf_counter() - started
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", default="1,10,100,1000")
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    parser.add_argument("--embedded", action="store_true", help="add one key with the embedded LLM judge")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "KEYS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.data)))
        return
    runs = [(kind, int(k)) for k in args.keys.split(",") for kind in ("ours", "reference")]
    if args.embedded:
        runs.append(("ours_embedded", 1))
    rows = []
    for kind, keys in runs:
        done = subprocess.run([sys.executable, __file__, "--data", str(args.data), "--child", kind, str(keys)],
                              capture_output=True, text=True, check=True)
        got = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append([kind, keys, int(got["points"]), int(got["scored"]), f"{got['points'] / got['seconds']:,.0f}",
                     f"{got['seconds']:.1f}", str(int(got.get("flagged", 0))), str(int(got.get("judged", 0))),
                     str(int(got.get("versions", 0))), f"{got.get('state_kb_per_key', 0):.1f}",
                     f"{got.get('artifact_kb_per_key', 0):.1f}", f"{got['max_rss_mb']:.0f}"])
        print(f"{kind} keys={keys}: {rows[-1][4]} points/s", file=sys.stderr, flush=True)
    print("\n".join(table_lines(["run", "keys", "points", "scored", "points/s", "s", "flagged", "judged", "versions",
                                 "state KB/key", "artifacts KB/key", "peak RSS MB"], rows)))


if __name__ == "__main__":
    main()
