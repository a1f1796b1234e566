"""Train the ResNet on the normalized digits."""

from pathlib import Path

from mlbuild import Config, rule
from safetensors.torch import save_file

from common.seeding import data_generator, seed_everything
from models.fitting import fit_epochs
from models.net import ResNet

MODEL_FILE = "model.safetensors"


class TrainConfig(Config):
    epochs: int = 3
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    seed: int = 0
    width: int = 16


@rule(deterministic=True)
def train(data: dict, config: TrainConfig, out: Path) -> dict:
    """Train from a seeded init in a seeded data order; write the weights to ``out/model.safetensors``.

    Returns the training metrics: ``final_loss`` and per-epoch ``train_loss``, ``train_accuracy``
    and ``val_accuracy``. Two runs with the same inputs and config write the same bytes.
    """
    seed_everything(config.seed)
    model = ResNet(width=config.width)
    history = fit_epochs(model, data, config, data_generator(config.seed))
    save_file(model.state_dict(), str(out / MODEL_FILE))
    return {"final_loss": history["train_loss"][-1], "epochs": config.epochs, **history}
