"""Everything a torch step needs to come out bit-for-bit identical from run to run."""

import os
import random

import numpy as np
import torch


def make_deterministic() -> None:
    """Pin torch to deterministic kernels on one thread.

    One intra-op thread is part of the contract, not a speed choice: a parallel reduction may sum
    in a different order with another thread count, and then the weights differ in the last bits.
    """
    # Required by cuBLAS before deterministic algorithms can be used on a GPU; harmless on CPU.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.set_num_threads(1)


def seed_everything(seed: int) -> None:
    """Make the process deterministic and seed python, numpy and torch's global generators."""
    make_deterministic()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def data_generator(seed: int) -> torch.Generator:
    """A generator for the data order only, so that model init and shuffling never share a stream."""
    return torch.Generator().manual_seed(seed)
