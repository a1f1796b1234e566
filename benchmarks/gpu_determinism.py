"""Does the example's training step reproduce bit for bit on a GPU?

    python benchmarks/gpu_determinism.py [--runs 2] [--epochs 3] [--no-deterministic]

Prepares the ResNet example's data with its own rules (digits -> split -> normalized), then
trains the example's model ``--runs`` times on CUDA, exactly as ``models/train.py`` does
(same seeds, same data order, same optimizer) but with the model and batches on the GPU, under
``torch.use_deterministic_algorithms(True)`` with ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (what
cuBLAS needs for deterministic GEMMs). It prints each run's safetensors digest and whether they
all match; where they differ, which tensors differ and by how much. ``--no-deterministic``
runs without deterministic algorithms, for contrast.

Without a CUDA device it says so and falls back to the CPU (the case `mlbuild verify` already
covers), so the script can be tried anywhere; the GPU question stays unanswered then.
Exit status: 0 when every run matched, 1 when they differed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# Must be set before CUDA initializes; cuBLAS reads it once.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "resnet"


def prepare_data() -> dict:
    from data.digits import load_digits
    from data.split import SplitConfig, split
    from features.normalize import normalize

    return normalize(split(load_digits(), SplitConfig(seed=0, val_fraction=0.15, test_fraction=0.15)))


def train_once(data: dict, device: str, epochs: int, deterministic: bool) -> bytes:
    """The example's training step on ``device``; returns the weights as safetensors bytes."""
    import torch
    from common.seeding import data_generator, seed_everything
    from models.fitting import make_optimizer, shuffled_batches
    from models.net import ResNet
    from models.train import TrainConfig
    from safetensors.torch import save

    config = TrainConfig(epochs=epochs)
    seed_everything(config.seed)  # also turns deterministic algorithms on
    torch.use_deterministic_algorithms(deterministic)
    model = ResNet(width=config.width).to(device)
    optimizer = make_optimizer(model, config)
    x = torch.tensor(data["x_train"], device=device)
    y = torch.tensor(data["y_train"], device=device)
    order = data_generator(config.seed)  # a CPU generator: the data order is the same on any device
    for _ in range(config.epochs):
        model.train()
        for index in shuffled_batches(len(x), config.batch_size, order):
            index = index.to(device)
            loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-deterministic", dest="deterministic", action="store_false")
    args = parser.parse_args()

    import torch

    from mlbuild.cache.digest import digest_bytes
    from mlbuild.engine.inspect.artifact_diff import diff_bytes, format_diff

    sys.path.insert(0, str(EXAMPLE))
    if torch.cuda.is_available():
        device = "cuda"
        print(f"device: {torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"cuDNN {torch.backends.cudnn.version()})")
    else:
        device = "cpu"
        print("no CUDA device here: the GPU determinism check is NOT run; falling back to the CPU "
              f"(torch {torch.__version__}) so the script itself is exercised")
    print(f"deterministic algorithms: {args.deterministic}; CUBLAS_WORKSPACE_CONFIG={os.environ['CUBLAS_WORKSPACE_CONFIG']}")
    data = prepare_data()
    blobs = []
    for run in range(1, args.runs + 1):
        started = time.perf_counter()
        blob = train_once(data, device, args.epochs, args.deterministic)
        blobs.append(blob)
        print(f"run {run}: {device} model.safetensors {digest_bytes(blob)} ({len(blob)} bytes, {time.perf_counter() - started:.1f}s)")
    same = all(b == blobs[0] for b in blobs)
    print(f"{device}: digests {'MATCH' if same else 'DIFFER'} across {args.runs} runs")
    for run, blob in enumerate(blobs[1:], start=2):
        if blob != blobs[0]:
            print(f"run {run} vs run 1:")
            for line in format_diff(diff_bytes("safetensors", blobs[0], blob)):
                print("  " + line)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
