"""Beyond memory: training on a 20 GB sharded .npy data set, streamed, beside in memory.

    python benchmarks/scale.py [--size-gb 20] [--features 256] [--dir DIR] [--keep]
                               [--json benchmarks/scale.json] [--smoke]

Writes `size-gb` of float32 rows (`features` wide, low-rank signal plus noise) as 1 GiB
`.npy` shards in DIR (default: a new folder under $DEEPAE_BENCH_TMP or the system's temporary
folder; deleted afterwards unless --keep), then, each in its own process so that its peak
resident memory is its own:

- streamed: `Autoencoder.fit(NpyShards(DIR))`, one epoch over every row (the scaler's
  one-pass statistics timed apart);
- in memory: the same model and batch on one shard loaded as an array, one epoch after a
  warm-up epoch (so compilation is not counted).

Reports rows/s of each, their ratio, and each process's peak RSS. Then (part "workers"): the
same model trained on 262,144 in-memory rows by one process and by two worker processes on
127.0.0.1 under MultiWorkerMirroredStrategy (TF_CONFIG), global batch 1024, 3 epochs:
rows/s of each (on 2 cores no speed-up is expected: this measures the overhead) and the
largest weight difference between the two results. Then (part "formats"): the first
262,144 rows written as one CSV and one Parquet file (row groups of 65,536), streamed
(`TableShards`) into the same model beside `.npy` shards and the array in memory: rows/s of
the second of two epochs each, and the one-pass statistics' time. Prints tables, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL = {"latent_dim": 32, "hidden_units": (256, 128)}
BATCH = 1024


def write_shards(folder: Path, size_gb: float, features: int, seed=0) -> dict:
    """Shards of at most 1 GiB, written through memory maps in chunks (little RAM)."""
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(16, features)).astype(np.float32) / 4
    rows_total = int(size_gb * 2**30) // (4 * features)
    rows_per_shard = 2**30 // (4 * features)
    t = time.perf_counter()
    i, done = 0, 0
    while done < rows_total:
        n = min(rows_per_shard, rows_total - done)
        arr = np.lib.format.open_memmap(folder / f"part-{i:04d}.npy", mode="w+",
                                        dtype=np.float32, shape=(n, features))
        for a in range(0, n, 65536):
            b = min(n, a + 65536)
            z = rng.standard_normal((b - a, 16), dtype=np.float32)
            arr[a:b] = z @ basis + 0.1 * rng.standard_normal((b - a, features), dtype=np.float32)
        arr.flush()
        del arr
        i, done = i + 1, done + n
    return {"rows": done, "shards": i, "features": features,
            "gib": round(done * 4 * features / 2**30, 2),
            "write_seconds": round(time.perf_counter() - t, 1)}


def child(mode: str, folder: str) -> dict:
    """One measurement, run in its own process; prints its result as JSON."""
    import resource

    from deepae import Autoencoder
    from deepae.data.streaming import NpyShards, scaler_for

    shards = NpyShards(folder)
    ae = Autoencoder(**MODEL)
    if mode == "stream":
        t = time.perf_counter()
        ae.scaler_ = scaler_for(shards, "auto")
        stats_s = time.perf_counter() - t
        ae.fit(shards, epochs=1, batch_size=BATCH, random_state=0, verbose=0)
        rows, seconds = shards.n_rows, ae.training_summary_["seconds"]
        extra = {"stats_seconds": round(stats_s, 1)}
    else:
        x = np.load(shards.paths[0], allow_pickle=False)  # one shard, in memory
        ae.fit(x, epochs=1, batch_size=BATCH, random_state=0, verbose=0)  # warm-up
        ae.fit(x, epochs=1, batch_size=BATCH, verbose=0)
        rows, seconds = len(x), ae.training_summary_["seconds"]
        extra = {}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB
    return {"mode": mode, "rows": int(rows), "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds), "final_loss": ae.history_["loss"][-1],
            "peak_rss_gib": round(peak, 3), **extra}


WORKER = """
import json, sys, time, numpy as np, deepae
from deepae.distribute import is_chief
x = np.load(sys.argv[1], mmap_mode="r")[:262144]
x = np.array(x)
strategy = None if sys.argv[3] == "none" else sys.argv[3]
ae = deepae.Autoencoder(latent_dim=32, hidden_units=(256, 128))
ae.fit(x, epochs=1, batch_size=1024, random_state=0, verbose=0, shuffle=False,
       strategy=strategy)                                  # warm-up: builds and traces
t = time.perf_counter()
ae.fit(x, epochs=3, batch_size=1024, verbose=0, shuffle=False, strategy=strategy)
seconds = time.perf_counter() - t
if strategy is None or is_chief():
    np.savez(sys.argv[2], *ae.get_weights())
print(json.dumps({"rows": 3 * len(x), "seconds": seconds}))
"""


def workers(folder: Path, tmp: Path) -> dict:
    """One process, then two worker processes on 127.0.0.1, on the first shard's rows."""
    import socket

    script = tmp / "worker.py"
    script.write_text(WORKER)
    shard = sorted(folder.glob("*.npy"))[0]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    one = subprocess.run([sys.executable, str(script), str(shard), str(tmp / "one.npz"),
                          "none"], env=env, capture_output=True, text=True, check=False)
    if one.returncode:
        raise RuntimeError(one.stderr[-3000:])
    socks = [socket.socket() for _ in range(2)]
    for sk in socks:
        sk.bind(("127.0.0.1", 0))
    addrs = [f"127.0.0.1:{sk.getsockname()[1]}" for sk in socks]
    for sk in socks:
        sk.close()
    procs = [subprocess.Popen([sys.executable, str(script), str(shard), str(tmp / "two.npz"),
                               "multi-worker"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**env, "TF_CONFIG": json.dumps(
                                  {"cluster": {"worker": addrs},
                                   "task": {"type": "worker", "index": i}})})
             for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=1800)
        if p.returncode:
            raise RuntimeError(err[-3000:])
        outs.append(json.loads(out.strip().splitlines()[-1]))
    r1 = json.loads(one.stdout.strip().splitlines()[-1])
    with np.load(tmp / "one.npz") as a, np.load(tmp / "two.npz") as b:
        diff = max(float(np.abs(a[k] - b[k]).max()) for k in a.files)
    one_rate = r1["rows"] / r1["seconds"]
    two_rate = outs[0]["rows"] / max(o["seconds"] for o in outs)
    return {"rows_per_epoch": 262144, "epochs": 3, "global_batch": 1024,
            "one_process_rows_per_s": round(one_rate), "two_workers_rows_per_s": round(two_rate),
            "two_over_one": round(two_rate / one_rate, 3), "max_weight_difference": diff}


FORMAT_ROWS = 262144


def _epoch_timer():
    """A Keras callback that keeps the seconds of each epoch (keras imported late)."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.t)

    return Timer()


def formats(folder: Path, tmp: Path) -> dict:
    """The same rows streamed from .npy, CSV and Parquet, and in memory (second epochs)."""
    import pandas as pd

    from deepae import Autoencoder
    from deepae.data.shards import NpyShards, TableShards
    from deepae.data.streaming import scaler_for

    x = np.array(np.load(sorted(folder.glob("*.npy"))[0], mmap_mode="r")[:FORMAT_ROWS])
    (tmp / "npy").mkdir()
    for i, part in enumerate(np.array_split(x, 4)):
        np.save(tmp / "npy" / f"part-{i}.npy", part)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])])
    t = time.perf_counter()
    frame.to_csv(tmp / "x.csv", index=False)
    csv_write = time.perf_counter() - t
    frame.to_parquet(tmp / "x.parquet", row_group_size=65536)
    del frame
    sources = {"memory": x, "npy": NpyShards(tmp / "npy"), "csv": TableShards(tmp / "x.csv"),
               "parquet": TableShards(tmp / "x.parquet")}
    out = {"rows": FORMAT_ROWS, "csv_gib": round((tmp / "x.csv").stat().st_size / 2**30, 2),
           "parquet_gib": round((tmp / "x.parquet").stat().st_size / 2**30, 2),
           "csv_write_seconds": round(csv_write, 1)}
    for name, src in sources.items():
        ae = Autoencoder(**MODEL)
        stats_s = None
        if name != "memory":
            t = time.perf_counter()
            ae.scaler_ = scaler_for(src, "auto")
            stats_s = round(time.perf_counter() - t, 1)
        timer = _epoch_timer()
        ae.fit(src, epochs=2, batch_size=BATCH, random_state=0, verbose=0, callbacks=[timer])
        out[name] = {"rows_per_s": round(FORMAT_ROWS / timer.seconds[-1]),
                     "stats_seconds": stats_s, "final_loss": ae.history_["loss"][-1]}
        print(f"  {name}: {out[name]}", flush=True)
    for name in ("npy", "csv", "parquet"):
        out[name]["over_memory"] = round(out[name]["rows_per_s"] / out["memory"]["rows_per_s"], 3)
    return out


def run_child(mode, folder):
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--dir", str(folder)],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(f"{mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=20.0)
    ap.add_argument("--features", type=int, default=256)
    ap.add_argument("--dir", help="shard folder (default: a new temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the shards")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "scale.json"))
    ap.add_argument("--smoke", action="store_true", help="0.25 GB, to check the script")
    ap.add_argument("--parts", default="stream,workers,formats",
                    help="stream (20 GB streamed vs in memory), workers (two vs one process), "
                    "formats (.npy, CSV, Parquet streamed vs in memory)")
    ap.add_argument("--merge", action="store_true", help="keep the other parts' results")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.dir)))
        return 0
    if args.smoke:
        args.size_gb = 0.25
    base = os.environ.get("DEEPAE_BENCH_TMP") or tempfile.gettempdir()
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="deepae-scale-",
                                                                   dir=base))
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free / 2**30
    if not any(folder.glob("*.npy")) and free < args.size_gb + 2:
        raise SystemExit(f"{folder} has {free:.1f} GiB free; {args.size_gb + 2:.0f} needed")
    parts = args.parts.split(",")
    size = args.size_gb if "stream" in parts else min(args.size_gb, 1.0)  # workers: one shard
    res = json.loads(Path(args.json).read_text()) if args.merge and Path(args.json).exists() \
        else {}
    command = " ".join(["python benchmarks/scale.py", *(sys.argv[1:] if argv is None else argv)])
    res["command"] = f"{res['command']} && {command}" if "command" in res else command
    try:
        data = write_shards(folder, size, args.features) \
            if not any(folder.glob("*.npy")) else {"reused": str(folder)}
        print(f"data: {data}", flush=True)
        if "stream" in parts:
            memory = run_child("memory", folder)
            print(f"in memory: {memory}", flush=True)
            stream = run_child("stream", folder)
            print(f"streamed:  {stream}", flush=True)
            res.update(data=data, model={**MODEL, "batch_size": BATCH}, in_memory=memory,
                       streamed=stream,
                       throughput_ratio=round(stream["rows_per_s"] / memory["rows_per_s"], 3))
        if "workers" in parts:
            with tempfile.TemporaryDirectory() as tmp:
                res["workers"] = workers(folder, Path(tmp))
            print(f"workers:   {res['workers']}", flush=True)
        if "formats" in parts:
            with tempfile.TemporaryDirectory(dir=base) as tmp:
                res["formats"] = formats(folder, Path(tmp))
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    Path(args.json).write_text(json.dumps(res, indent=1))
    if "streamed" in res:
        memory, stream = res["in_memory"], res["streamed"]
        head = f"{'run':<10} {'rows':>12} {'seconds':>8} {'rows/s':>9} {'peak RSS GiB':>13}"
        print(head + "\n" + "-" * len(head))
        for name, r in (("in memory", memory), ("streamed", stream)):
            print(f"{name:<10} {r['rows']:>12,} {r['seconds']:>8.1f} {r['rows_per_s']:>9,} "
                  f"{r['peak_rss_gib']:>13.2f}")
        print(f"streamed / in-memory throughput: {res['throughput_ratio']:.2f}; scaler's pass "
              f"over the shards {stream['stats_seconds']} s")
    if "workers" in res:
        two = res["workers"]
        print(f"one process {two['one_process_rows_per_s']:,} rows/s, two workers "
              f"{two['two_workers_rows_per_s']:,} rows/s ({two['two_over_one']:.2f} x); largest "
              f"weight difference {two['max_weight_difference']:.2g}")
    if "formats" in res:
        f = res["formats"]
        head = f"{'source':<10} {'rows/s':>9} {'x memory':>9} {'stats s':>8}"
        print(f"\n{f['rows']:,} rows of {args.features} features (CSV {f['csv_gib']} GiB, "
              f"Parquet {f['parquet_gib']} GiB), second epoch:\n{head}\n" + "-" * len(head))
        for name in ("memory", "npy", "csv", "parquet"):
            r = f[name]
            stats = "" if r["stats_seconds"] is None else r["stats_seconds"]
            print(f"{name:<10} {r['rows_per_s']:>9,} {r.get('over_memory', 1.0):>9.2f} "
                  f"{stats:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
