"""The training-throughput peer: PyTorch trains the Fashion-MNIST CNN of specs/fashion.cnn on the CPU.

    /usr/bin/python3 bench/peers/train_fashion.py --threads N [--batch 64] [--steps 30] [--warmup 5] [--windows 3]

Same model (torch_models.fashion_cnn mirrors specs/fashion.cnn: conv32-conv32-pool-drop, conv64-conv64-pool-drop,
dense 10; 3x3 SAME convs without bias, each followed by batch norm and ReLU), same training settings as the spec's
train section (cross-entropy, Adam lr 1e-3, batch 64), real Fashion-MNIST images scaled to [0, 1]. After `warmup`
steps, `windows` timed windows of `steps` optimiser steps each (forward, loss, backward, Adam update, and taking
the batch from the shuffled training set); prints one JSON line whose `images_per_s` is the median window.
"""
import argparse
import gzip
import json
import os
import statistics
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    _, _, dtype, ndim = struct.unpack(">BBBB", data[:4])
    if dtype != 0x08:
        raise SystemExit(f"{path}: expected uint8 IDX data")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="optimiser steps per timed window")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--data", default=DATA, help="folder with train-images-idx3-ubyte.gz and labels")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a machine with an NVIDIA GPU")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))
    device = torch.device(args.device)
    x_all = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1).to(device)  # [N, 1, 28, 28]
    y_all = torch.from_numpy(labels.astype(np.int64)).to(device)

    model = torch_models.fashion_cnn().train().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    order = torch.randperm(x_all.shape[0]).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cursor = 0

    def step():
        nonlocal cursor
        if cursor + args.batch > order.numel():
            cursor = 0
        idx = order[cursor:cursor + args.batch]
        cursor += args.batch
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x_all[idx]), y_all[idx])
        loss.backward()
        optimizer.step()
        return loss

    for _ in range(args.warmup):
        step()
    sync()
    rates = []
    loss = None
    for _ in range(args.windows):
        start = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        sync()
        elapsed = time.perf_counter() - start
        rates.append(args.steps * args.batch / elapsed)
    print(json.dumps({
        "device": str(device), "threads": args.threads, "batch": args.batch, "images_per_s": statistics.median(rates),
        "windows": [round(r, 1) for r in rates], "loss": float(loss), "torch": torch.__version__,
        "params": torch_models.count_params(model),
    }))


if __name__ == "__main__":
    main()
