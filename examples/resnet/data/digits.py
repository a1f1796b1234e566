"""The source data: scikit-learn's bundled 8x8 handwritten digits (no download)."""

import numpy as np
from mlbuild import rule
from sklearn import datasets

# load_digits() gives pixel intensities 0..16.
MAX_INTENSITY = 16.0


@rule()
def load_digits() -> dict:
    """Return the 1,797 digits as NCHW images in [0, 1] and their labels.

    ``images`` is float32 with shape (N, 1, 8, 8); ``labels`` is int64 with shape (N,).
    """
    bunch = datasets.load_digits()
    images = (bunch.images / MAX_INTENSITY).astype(np.float32)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    return {"images": images, "labels": labels}
