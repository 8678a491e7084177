"""A small real model: an MLP classifier on scikit-learn's bundled digits data set (no download).

Each iteration trains one more epoch (``partial_fit``) and reports validation loss and accuracy;
the model is checkpointed so a retried or resumed trial continues where it stopped.
"""

import os
import pickle
import tempfile
import warnings

from hyperfleet import tune


def _data():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    return train_test_split(x, y, test_size=0.25, random_state=0)


def train(config):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import log_loss
    from sklearn.neural_network import MLPClassifier

    x_tr, x_va, y_tr, y_va = _data()
    model = MLPClassifier(
        hidden_layer_sizes=(config["width"],) * config["layers"],
        learning_rate_init=config["lr"],
        alpha=config["alpha"],
        batch_size=64,
        random_state=0,
    )
    start = 0
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d, open(os.path.join(d, "model.pkl"), "rb") as f:
            model, start = pickle.load(f)
    classes = list(range(10))
    for epoch in range(start, config["epochs"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_tr, y_tr, classes=classes)
        proba = model.predict_proba(x_va)
        metrics = {"loss": float(log_loss(y_va, proba, labels=classes)), "accuracy": float(model.score(x_va, y_va))}
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "model.pkl"), "wb") as f:
                pickle.dump((model, epoch + 1), f)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
