"""`regdrop-fast demo`: the article's two examples (shared/seed/article.txt), done right.

1. regression: Ridge, Lasso and elastic net on scikit-learn's diabetes data by (proximal) gradient
   descent with penalty_grad and prox_l1, coefficients beside scikit-learn's, max relative difference
   <= 1e-6 and the same exact zeros (see regression.py).
2. mlp: a two-layer NumPy MLP on scikit-learn's digits trained by hand-written backprop with dropout /
   dropout_backward, penalty_grad and max_norm; four configurations, train vs test loss per epoch
   (mlp_loss.png); dropout + max-norm reaches >= 97% test accuracy (see mlp.py).

article.py says what the article's versions got wrong. Seeds are fixed: everything printed on stdout is
the same on every run (the elapsed time goes to stderr). The numbers also go to results.json in the
output directory. Exit code 0 when every check holds, 1 when one does not.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

from . import article


def _rule(title: str) -> str:
    return f"{'=' * 8} {title} {'=' * max(0, 92 - len(title))}"


def run(out: Path, *, only: str | None = None, epochs: int | None = None) -> int:
    """Run the demo parts (both, or `only` one), write plots and results.json into out; exit code."""
    start = time.perf_counter()
    can_plot = importlib.util.find_spec("matplotlib") is not None
    results: dict = {}
    ok = True
    written = []

    print(article.ABOUT)
    print()
    if only in (None, "regression"):
        from . import regression

        print(_rule("1. penalized linear regression (article section 4.1)"))
        print(article.REGRESSION)
        print()
        fits = regression.fit_all()
        print(regression.format_fits(fits))
        ok &= all(f.ok for f in fits)
        results["regression"] = [
            {"model": f.name, "ours": f.ours.tolist(), "sklearn": f.sklearn.tolist(), "iterations": f.iterations,
             "zeros": f.zeros, "max_rel_diff": f.max_rel_diff, "same_zeros": f.same_zeros, "ok": f.ok}
            for f in fits
        ]

    if only in (None, "mlp"):
        from . import mlp

        n_epochs = mlp.EPOCHS if epochs is None else epochs
        print(_rule("2. two-layer MLP with dropout (article section 4.2)"))
        print(article.DROPOUT)
        print()
        print(f"digits: {mlp.HIDDEN} hidden ReLU units, {n_epochs} epochs, batch {mlp.BATCH}, "
              f"SGD lr {mlp.LEARNING_RATE} momentum {mlp.MOMENTUM}, {1 - mlp.TEST_FRACTION:.0%}/"
              f"{mlp.TEST_FRACTION:.0%} stratified split")
        histories = mlp.train_all(n_epochs)
        print(mlp.format_histories(histories))
        best = histories[-1]
        if n_epochs == mlp.EPOCHS:  # the bar is a claim about the demo's own settings
            passed = best.test_acc[-1] >= mlp.ACCURACY_BAR
            print(f"{best.config.name}: test accuracy {best.test_acc[-1]:.2%} (bar {mlp.ACCURACY_BAR:.0%}): "
                  f"{'OK' if passed else 'BELOW THE BAR'}")
            ok &= passed
        else:
            print(f"{best.config.name}: test accuracy {best.test_acc[-1]:.2%} after {n_epochs} epochs "
                  f"(the {mlp.ACCURACY_BAR:.0%} bar is for the default {mlp.EPOCHS})")
        results["mlp"] = {
            "epochs": n_epochs,
            "accuracy_bar": mlp.ACCURACY_BAR,
            "runs": [{"config": h.config.name, "train_loss": h.train_loss, "test_loss": h.test_loss,
                      "train_acc": h.train_acc, "test_acc": h.test_acc} for h in histories],
        }
        if can_plot:
            png = out / "mlp_loss.png"
            mlp.plot_losses(histories, png)
            written.append(png)
        print()

    if not can_plot:
        print("note: matplotlib is not installed, so no plot was drawn (pip install 'regdrop_fast[demo]')")
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    written.append(path)
    print("wrote " + ", ".join(str(p) for p in written))
    print(f"demo finished in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0 if ok else 1
