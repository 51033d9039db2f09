#!/usr/bin/env python3
"""The GPU peer of `kiln train --device cuda` in benchmarks/gpu_check.sh: the
Fashion-MNIST example MLP (784-256-128-10, ReLU, Adam 1e-3) in PyTorch on
the same GPU, eager and with the whole step captured in a CUDA graph.

Same model, optimizer, batch size and data as kiln: the uint8 images live on
the GPU, each batch is gathered from a shuffled index and scaled by 1/255 on
the GPU, as kiln does. Prints one line per mode:
`torch mode=eager batch=128 samples_per_s=N seconds=S torch_version=V`.

    python3 train_gpu_vs_pytorch.py DATA --batch 128 --epochs 1 --mode eager

DATA is a kiln dataset file (read with h5py) or a folder holding the
Fashion-MNIST IDX files (read with gzip alone: the GPU machine's Python may
have PyTorch but not h5py).
"""
import argparse
import gzip
import os
import time

import torch
from torch import nn


def load(path):
    """uint8 images [N, 28, 28] and int64 labels [N] of the train split."""
    if os.path.isdir(path):
        with gzip.open(os.path.join(path, "train-images-idx3-ubyte.gz")) as f:
            raw = f.read()
        x = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(-1, 28, 28)
        with gzip.open(os.path.join(path, "train-labels-idx1-ubyte.gz")) as f:
            raw = f.read()
        y = torch.frombuffer(bytearray(raw[8:]), dtype=torch.uint8).to(torch.int64)
        return x, y
    import h5py
    import numpy as np
    with h5py.File(path, "r") as f:
        return (torch.from_numpy(np.asarray(f["train/X"])),
                torch.from_numpy(np.asarray(f["train/y"]).astype(np.int64)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--mode", choices=["eager", "graphs"], default="eager")
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.manual_seed(42)
    x_all, y_all = load(args.dataset)
    x_all, y_all = x_all.to(dev), y_all.to(dev)
    n = x_all.shape[0]
    n_train = n - int(round(0.1 * n))
    train_idx = torch.randperm(n, device=dev)[:n_train]
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(),
                          nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)).to(dev)
    graphs = args.mode == "graphs"
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, capturable=graphs)
    loss_fn = nn.CrossEntropyLoss()
    bs = args.batch
    steps = n_train // bs  # full batches only: one static shape for the graph

    if graphs:
        static_idx = train_idx[:bs].clone()

        def step():
            xb = x_all[static_idx].float().div_(255.0)
            loss = loss_fn(model(xb), y_all[static_idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=False)
            return loss

        # Warm up on a side stream, then capture (PyTorch's documented recipe).
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        order = train_idx[torch.randperm(n_train, device=dev)]
        for i in range(steps):
            idx = order[i * bs:(i + 1) * bs]
            if graphs:
                static_idx.copy_(idx)
                g.replay()
            else:
                xb = x_all[idx].float().div_(255.0)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xb), y_all[idx])
                loss.backward()
                opt.step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"torch mode={args.mode} batch={bs} samples_per_s={args.epochs * steps * bs / dt:.1f} "
          f"seconds={dt:.3f} torch_version={torch.__version__}")


if __name__ == "__main__":
    main()
