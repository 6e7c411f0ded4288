"""Lasso by proximal gradient descent (ISTA) with regdrop_fast.prox_l1, checked against scikit-learn.

    minimize (1/2n) ||y - Xw||^2 + alpha ||w||_1

The smooth part takes a plain gradient step; the L1 part is its proximal operator, soft-thresholding by
step * alpha, which sets small coefficients exactly to zero. `regdrop-fast demo` does this and more
(Ridge, elastic net, an accelerated solver); this is the smallest version.
"""

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso

import regdrop_fast as rdf

alpha = 0.1
X, y = load_diabetes(return_X_y=True)
n = len(y)
step = n / np.linalg.eigvalsh(X.T @ X)[-1]  # 1 / Lipschitz constant of the smooth part's gradient

w = np.zeros(X.shape[1])
for it in range(200_000):
    w_next = w - step * (X.T @ (X @ w - y)) / n
    zeros = rdf.prox_l1(w_next, step * alpha)
    done = np.max(np.abs(w_next - w)) <= 1e-13 * np.max(np.abs(w_next))
    w = w_next
    if done:
        break

sk = Lasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=1_000_000).fit(X, y).coef_
print(f"ISTA: {it + 1} iterations, {zeros} exact zeros")
print("ours   ", np.round(w, 4))
print("sklearn", np.round(sk, 4))
print(f"max relative difference {np.max(np.abs(w - sk)) / np.max(np.abs(sk)):.1e}")
