"""Training throughput: deepae beside a plain PyTorch eager loop and the machine's GEMM rate.

Rows: the 784-1000-500-250-30 autoencoder (mirrored decoder) at batch 256 and 1024, and a
small 784-256-128-64 one at batch 256. Each is timed for one epoch of 60,000 MNIST samples
after a warm-up epoch, in one run, so ratios are comparable on a shared, noisy machine.
deepae's epoch is timed by a callback inside `Autoencoder.fit(x, epochs=1)`, like the
PyTorch loop's epoch; the fixed cost of each fit call (validation, scaling, data
fingerprint, pipeline set-up) is reported beside it as `deepae_fit_overhead_s`. deepae and PyTorch epochs alternate `--repeats`
times and the best epoch of each is reported (the machine is shared: the best is the one
least disturbed by neighbours), with the median beside it.

    python benchmarks/train_throughput.py [--json benchmarks/train_throughput.json]

Model FLOPs per sample are counted as 6 x the multiply-adds of the dense layers (forward 2,
backward 4); "% GEMM" is the achieved model FLOP rate over numpy's float32 matmul rate
measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

ROWS = [("784-1000-500-250-30", (1000, 500, 250), 30, 256),
        ("784-1000-500-250-30", (1000, 500, 250), 30, 1024),
        ("784-256-128-64", (256, 128), 64, 256)]


def gemm_gflops(n=2048, repeats=5) -> float:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    b = np.random.default_rng(1).random((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def flops_per_sample(hidden, latent, d=784) -> float:
    sizes = [d, *hidden, latent, *reversed(hidden), d]
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return 6.0 * macs


def load_x(n=60000):
    try:
        from deepae.datasets import load_mnist

        (x, _), _ = load_mnist()
        return x[:n].reshape(n, -1).astype(np.float32) / 255.0, "MNIST"
    except Exception:  # throughput does not depend on the pixel values
        return np.random.default_rng(0).random((n, 784), dtype=np.float32), "random"


def deepae_epoch(x, hidden, latent, batch, jit="auto"):
    """Returns a function that trains one more epoch with `Autoencoder.fit` and gives
    (samples/s of the epoch itself, seconds of the fit call beyond its epoch)."""
    import keras

    import deepae

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()
    ae = deepae.Autoencoder(hidden_units=hidden, latent_dim=latent)
    ae.fit(x, epochs=1, batch_size=batch, verbose=0, random_state=0, jit_compile=jit)  # warm-up

    def epoch():
        t = time.perf_counter()
        ae.fit(x, epochs=1, batch_size=batch, verbose=0, jit_compile=jit, callbacks=[timer])
        return len(x) / timer.seconds, time.perf_counter() - t - timer.seconds

    return epoch


def torch_epoch(x, hidden, latent, batch):
    import torch
    from torch import nn

    torch.manual_seed(0)
    sizes = [784, *hidden, latent, *reversed(hidden), 784]
    mods = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mods.append(nn.Linear(a, b))
        last = i == len(sizes) - 2
        if i == len(hidden):  # code layer: linear, as deepae's default
            continue
        mods.append(nn.Sigmoid() if last else nn.ReLU())
    model = nn.Sequential(*mods)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(x)
    loss_fn = nn.MSELoss()

    def epoch():
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            xb = xt[perm[i: i + batch]]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), xb)
            loss.backward()
            opt.step()

    epoch()  # warm-up

    def timed():
        t = time.perf_counter()
        epoch()
        return len(x) / (time.perf_counter() - t)

    return timed, torch.__version__, torch.get_num_threads()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default="benchmarks/train_throughput.json")
    ap.add_argument("--samples", type=int, default=60000)
    ap.add_argument("--rows", default="0,1,2", help="which rows to run (default all: 0,1,2)")
    ap.add_argument("--jit-compile", default="auto", choices=["auto", "true", "false"],
                    help="deepae's jit_compile (default auto, as users get it)")
    ap.add_argument("--repeats", type=int, default=3, help="timed epochs of each (default 3)")
    args = ap.parse_args()

    import keras

    x, source = load_x(args.samples)
    gemm = gemm_gflops()
    rows = []
    for name, hidden, latent, batch in [ROWS[int(i)] for i in args.rows.split(",")]:
        fps = flops_per_sample(hidden, latent)
        jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
        d_epoch = deepae_epoch(x, hidden, latent, batch, jit)
        t_epoch, torch_version, threads = torch_epoch(x, hidden, latent, batch)
        ds, ts, fit_s = [], [], []
        for _ in range(args.repeats):
            rate, seconds = d_epoch()
            ds.append(rate)
            fit_s.append(seconds)
            ts.append(t_epoch())
        d, t = max(ds), max(ts)
        gemm_after = gemm_gflops()
        g = max(gemm, gemm_after)  # the machine is shared: take the better reading
        rows.append({"model": name, "batch": batch, "deepae_samples_s": round(d),
                     "torch_samples_s": round(t), "deepae_over_torch": round(d / t, 3),
                     "deepae_median_samples_s": round(float(np.median(ds))),
                     # what a one-epoch fit() call costs beyond its epoch (validation,
                     # scaling, fingerprint, pipeline set-up), measured call by call
                     "deepae_fit_overhead_s": round(float(np.median(fit_s)), 3),
                     "torch_median_samples_s": round(float(np.median(ts))),
                     "deepae_gflops": round(d * fps / 1e9, 1),
                     "deepae_pct_gemm": round(100 * d * fps / 1e9 / g, 1),
                     "torch_pct_gemm": round(100 * t * fps / 1e9 / g, 1),
                     "gemm_gflops": round(g, 1)})
        print(f"done {name} @ {batch}", flush=True)

    head = (f"{'model':<22} {'batch':>5} {'deepae/s':>9} {'torch/s':>9} {'ratio':>6} "
            f"{'deepae GF/s':>11} {'%GEMM':>6} {'torch %GEMM':>11}")
    print(f"\nTraining throughput, best of {args.repeats} epochs of {len(x)} {source} samples "
          f"after a warm-up; numpy float32 GEMM {gemm:.1f} GFLOP/s")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<22} {r['batch']:>5} {r['deepae_samples_s']:>9} "
              f"{r['torch_samples_s']:>9} {r['deepae_over_torch']:>6.2f} "
              f"{r['deepae_gflops']:>11.1f} {r['deepae_pct_gemm']:>6.1f} "
              f"{r['torch_pct_gemm']:>11.1f}")
    print("medians (samples/s): " + "; ".join(
        f"{r['model']}@{r['batch']}: deepae {r['deepae_median_samples_s']}, torch "
        f"{r['torch_median_samples_s']}" for r in rows))
    print("deepae fit() overhead per call (s): " + "; ".join(
        f"{r['model']}@{r['batch']}: {r['deepae_fit_overhead_s']}" for r in rows))
    out = {"command": "python benchmarks/train_throughput.py", "rows": rows,
           "repeats": args.repeats,
           "gemm_gflops": round(gemm, 1), "data": source, "keras": keras.__version__,
           "backend": keras.backend.backend(), "torch": torch_version, "torch_threads": threads,
           "cpu_count": os.cpu_count(), "machine": platform.machine()}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
