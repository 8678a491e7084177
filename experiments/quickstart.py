"""The quickstart from Python: the same experiment as quickstart.toml.

    python experiments/quickstart.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments.digits import train  # noqa: E402
from hyperfleet import tune  # noqa: E402


def main() -> None:
    tuner = tune.Tuner(
        train,
        param_space={
            "lr": tune.loguniform(1e-3, 1e-1),
            "alpha": tune.loguniform(1e-5, 1e-2),
            "width": tune.choice([32, 64]),
            "layers": tune.choice([1, 2]),
            "epochs": 8,
        },
        tune_config=tune.TuneConfig(metric="loss", mode="min", num_samples=8, max_concurrent_trials=2),
        run_config=tune.RunConfig(
            name="quickstart_py",
            storage_path="./results",
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )
    results = tuner.fit()
    best = results.get_best_result()
    print(f"best loss {best.metrics['loss']:.4f} accuracy {best.metrics['accuracy']:.3f} with {best.config}")
    print(f"checkpoint: {best.checkpoint}")


if __name__ == "__main__":
    main()
