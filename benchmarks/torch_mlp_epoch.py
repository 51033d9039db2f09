#!/usr/bin/env python3
"""One epoch of the Fashion-MNIST example MLP in PyTorch eager mode, the peer
of `kiln train` in benchmarks/train_vs_pytorch.sh.

Same model (784-256-128-10, ReLU), same optimizer (Adam 1e-3), same batch
size, same thread count, same data (read from the kiln dataset file with
h5py, uint8 scaled by 1/255 per batch as kiln does), same 90/10 split.
Prints one line: `torch samples_per_s=N seconds=S`.

    python3 torch_mlp_epoch.py DATASET.h5 --threads 2 --batch 128
"""
import argparse
import time

import h5py
import numpy as np
import torch
from torch import nn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(42)
    with h5py.File(args.dataset, "r") as f:
        x_all = torch.from_numpy(np.asarray(f["train/X"]))  # uint8 [N, 28, 28]
        y_all = torch.from_numpy(np.asarray(f["train/y"]).astype(np.int64))
    n = x_all.shape[0]
    n_train = n - int(round(0.1 * n))
    perm = torch.randperm(n)
    train_idx = perm[:n_train]
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                          nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        order = train_idx[torch.randperm(n_train)]
        for lo in range(0, n_train, args.batch):
            idx = order[lo:lo + args.batch]
            xb = x_all[idx].float().div_(255.0)
            yb = y_all[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
    dt = time.perf_counter() - t0
    print(f"torch samples_per_s={args.epochs * n_train / dt:.1f} seconds={dt:.3f} "
          f"torch_version={torch.__version__}")


if __name__ == "__main__":
    main()
