#!/usr/bin/python3
"""Writes tests/data/torch_mlp_fixture.h5, the PyTorch reference that
tests/test_torch_fixture.c holds kiln to.

Regenerate (Debian: apt-get install python3-torch python3-h5py) with

    /usr/bin/python3 tests/data/make_torch_fixture.py

from the repository root (or pass the output path as the only argument).
The model, input and labels come from torch.manual_seed(0), so the file only
changes when PyTorch's generator or kernels do; commit the new file with the
script.

Layout (all float32 unless noted):
    /x                [6, 3, 4]  input batch
    /y                [6]        int32 class labels
    /params/<name>               the state_dict: 1.weight [16, 12], 1.bias [16],
                                 3.weight [8, 16], 3.bias [8], 5.weight [4, 8],
                                 5.bias [4]
    /logits           [6, 4]     the model's output
    /loss             scalar     CrossEntropyLoss (mean)
    /grads/<name>                d loss / d param after loss.backward()
    /smooth/loss      scalar     CrossEntropyLoss(label_smoothing=0.1)
    /smooth/grads/<name>         its gradients
Root attributes: torch_version, label_smoothing (of /smooth), generator.
"""
import os
import sys

import h5py
import numpy as np
import torch
from torch import nn

SMOOTHING = 0.1


def grads_of(model, x, y, smoothing):
    model.zero_grad()
    loss = nn.CrossEntropyLoss(label_smoothing=smoothing)(model(x), y)
    loss.backward()
    return loss.detach().numpy().astype(np.float32), {
        name: p.grad.detach().numpy().astype(np.float32).copy()
        for name, p in model.named_parameters()
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "torch_mlp_fixture.h5")

    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 16),
        nn.ReLU(),
        nn.Linear(16, 8),
        nn.Tanh(),
        nn.Linear(8, 4),
    )
    x = torch.randn(6, 3, 4)
    y = torch.randint(0, 4, (6,))

    logits = model(x).detach().numpy().astype(np.float32)
    loss, grads = grads_of(model, x, y, 0.0)
    smooth_loss, smooth_grads = grads_of(model, x, y, SMOOTHING)

    tmp = out + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["torch_version"] = str(torch.__version__)
        f.attrs["label_smoothing"] = np.float32(SMOOTHING)
        f.attrs["generator"] = "tests/data/make_torch_fixture.py"
        f["x"] = x.numpy().astype(np.float32)
        f["y"] = y.numpy().astype(np.int32)
        for name, p in model.state_dict().items():
            f["params/" + name] = p.numpy().astype(np.float32)
        f["logits"] = logits
        f["loss"] = loss
        for name, g in grads.items():
            f["grads/" + name] = g
        f["smooth/loss"] = smooth_loss
        for name, g in smooth_grads.items():
            f["smooth/grads/" + name] = g
    os.replace(tmp, out)
    print("wrote %s (loss %.6f, smoothed %.6f)" % (out, float(loss), float(smooth_loss)))


if __name__ == "__main__":
    main()
