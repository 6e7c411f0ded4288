"""Part 1: penalized linear regression by (proximal) gradient descent, checked against scikit-learn.

Data: scikit-learn's bundled diabetes set (442 x 10), fit_intercept=False throughout. The three models
and the objectives scikit-learn minimizes:

    Ridge(alpha)                ||y - Xw||^2 + alpha * ||w||^2
    Lasso(alpha)                (1/2n) ||y - Xw||^2 + alpha * ||w||_1
    ElasticNet(alpha, l1_ratio) (1/2n) ||y - Xw||^2 + alpha * l1_ratio * ||w||_1
                                    + (alpha/2) * (1 - l1_ratio) * ||w||^2

All three are solved by one accelerated proximal gradient loop (FISTA with O'Donoghue-Candes restarts):
the smooth part's gradient is the data term's plus the L2 term's, added in place by
``regdrop_fast.penalty_grad(w, g, l2=...)`` (which adds l2 * w and returns (l2/2) * ||w||^2, hence
l2 = 2 * alpha for Ridge and alpha * (1 - l1_ratio) for the elastic net); the L1 term is handled by its
proximal operator ``regdrop_fast.prox_l1(w, step * l1)``, the soft-thresholding that yields exact zeros.
The loop stops when a step changes no coefficient by more than 1e-15 of the largest one, and the result
must agree with scikit-learn (run with a tight tolerance) to 1e-6 relative, zero pattern included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import regdrop_fast as rdf

RIDGE_ALPHA = 0.1
LASSO_ALPHA = 0.1
ENET_ALPHA, ENET_L1_RATIO = 0.01, 0.5
TOLERANCE = 1e-6  # max |ours - sklearn| / max |sklearn|
STEP_TOL = 1e-15
MAX_ITER = 100_000


@dataclass
class Fit:
    name: str
    objective: str
    ours: np.ndarray
    sklearn: np.ndarray
    iterations: int
    zeros: int  # exact zeros in our coefficients (prox_l1's count at the last step; 0 without L1)

    @property
    def max_rel_diff(self) -> float:
        """max_j |ours_j - sklearn_j| / max_j |sklearn_j|: relative to the coefficient vector's scale, so
        coefficients that are exactly zero on both sides count as agreeing."""
        return float(np.max(np.abs(self.ours - self.sklearn)) / np.max(np.abs(self.sklearn)))

    @property
    def same_zeros(self) -> bool:
        return bool(np.array_equal(self.ours == 0, self.sklearn == 0))

    @property
    def ok(self) -> bool:
        return self.max_rel_diff <= TOLERANCE and self.same_zeros


def proximal_gradient(X: np.ndarray, y: np.ndarray, *, data_scale: float, l1: float, l2: float
                      ) -> tuple[np.ndarray, int, int]:
    """Minimize data_scale * ||Xw - y||^2 + (l2/2) ||w||^2 + l1 ||w||_1; returns (w, iterations, zeros)."""
    hessian_bound = 2.0 * data_scale * float(np.linalg.eigvalsh(X.T @ X)[-1]) + l2  # Lipschitz constant
    step = 1.0 / hessian_bound
    w = np.zeros(X.shape[1])
    z = w.copy()  # the extrapolated point where the gradient is taken
    grad = np.empty_like(w)
    t = 1.0
    zeros = 0
    for it in range(1, MAX_ITER + 1):
        np.multiply(2.0 * data_scale, X.T @ (X @ z - y), out=grad)
        rdf.penalty_grad(z, grad, l2=l2)  # grad += l2 * z
        w_next = z - step * grad
        if l1 > 0:
            zeros = rdf.prox_l1(w_next, step * l1)
        moved = w_next - w
        if np.dot(z - w_next, moved) > 0:  # momentum points uphill: restart the acceleration
            t = 1.0
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
        z = w_next + ((t - 1.0) / t_next) * moved
        w, t = w_next, t_next
        if np.max(np.abs(moved)) <= STEP_TOL * np.max(np.abs(w)):
            break
    return w, it, zeros


def fit_all() -> list[Fit]:
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import ElasticNet, Lasso, Ridge

    X, y = load_diabetes(return_X_y=True)
    n = X.shape[0]
    # scikit-learn's coordinate descent stops at tol=1e-4 by default, far from the optimum at 1e-6;
    # asking it for the optimum is part of comparing optima.
    tight = dict(fit_intercept=False, tol=1e-14, max_iter=1_000_000)
    fits = []

    w, it, zeros = proximal_gradient(X, y, data_scale=1.0, l1=0.0, l2=2.0 * RIDGE_ALPHA)
    sk = Ridge(alpha=RIDGE_ALPHA, fit_intercept=False).fit(X, y).coef_
    fits.append(Fit(f"Ridge(alpha={RIDGE_ALPHA})", "||y-Xw||^2 + alpha||w||^2   (penalty_grad, l2=2*alpha)",
                    w, sk, it, zeros))

    w, it, zeros = proximal_gradient(X, y, data_scale=0.5 / n, l1=LASSO_ALPHA, l2=0.0)
    sk = Lasso(alpha=LASSO_ALPHA, **tight).fit(X, y).coef_
    fits.append(Fit(f"Lasso(alpha={LASSO_ALPHA})", "(1/2n)||y-Xw||^2 + alpha||w||_1   (prox_l1)", w, sk, it, zeros))

    w, it, zeros = proximal_gradient(X, y, data_scale=0.5 / n, l1=ENET_ALPHA * ENET_L1_RATIO,
                                     l2=ENET_ALPHA * (1.0 - ENET_L1_RATIO))
    sk = ElasticNet(alpha=ENET_ALPHA, l1_ratio=ENET_L1_RATIO, **tight).fit(X, y).coef_
    fits.append(Fit(f"ElasticNet(alpha={ENET_ALPHA}, l1_ratio={ENET_L1_RATIO})",
                    "(1/2n)||y-Xw||^2 + a*r||w||_1 + (a/2)(1-r)||w||^2   (penalty_grad + prox_l1)",
                    w, sk, it, zeros))
    return fits


FEATURES = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def format_fits(fits: list[Fit]) -> str:
    lines = []
    for fit in fits:
        lines.append(f"{fit.name}: {fit.objective}")
        lines.append(f"  {'feature':8s} {'regdrop_fast':>18s} {'scikit-learn':>18s}")
        for name, a, b in zip(FEATURES, fit.ours, fit.sklearn):
            lines.append(f"  {name:8s} {a + 0.0:18.10f} {b + 0.0:18.10f}")  # + 0.0: print -0.0 as 0.0
        verdict = "OK" if fit.ok else "MISMATCH"
        lines.append(f"  iterations {fit.iterations}, exact zeros {fit.zeros} "
                     f"(sklearn {int(np.sum(fit.sklearn == 0))}), max relative difference "
                     f"{fit.max_rel_diff:.2e} (limit {TOLERANCE:.0e}): {verdict}")
        lines.append("")
    return "\n".join(lines)
