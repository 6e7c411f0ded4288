"""What the article's two NumPy examples (shared/seed/article.txt, sections 4.1 and 4.2) got wrong.

Kept as text so the demo can print it next to the numbers that show the fix working.
"""

ABOUT = """\
The article: a short Chinese-language NumPy blog post, "Neural network basics: regularization and dropout"
(its text: shared/seed/article.txt). docs/article.md in the source tree describes its two examples, what
they computed and what was wrong."""

REGRESSION = """\
The article's L2 example (section 4.1) computes its gradient as
    gradients = (1 / m) * np.dot(X.T, (y_pred - y)) + (lambda_val / m) * np.dot(theta, 2 * theta)
* The derivative of the penalty (lambda/2m) * sum(theta_j^2) is (lambda/m) * theta: a vector shaped like
  theta and linear in it. np.dot(theta, 2 * theta) multiplies theta by itself instead: for the article's
  (10, 1) theta it raises "shapes (10,1) and (10,1) not aligned", and for a 1-d theta it is the scalar
  2 * ||theta||^2 added to every coefficient -- quadratic, and pointing the same way for all of them.
* `m` is never defined (NameError on the first iteration); the data term drops the 2 of
  d/dtheta mean((X theta - y)^2); the penalty value lambda * sum(theta^2) it computes (and discards) is
  not the function whose gradient it uses. So the example never ran.
Done right below: penalty_grad adds l2 * w (+ l1 * sign(w)) into the gradient in place and returns the
matching value (l2/2)*sum(w^2) (+ l1*sum|w|) -- one function, value and gradient together. L1 is not
differentiable at 0, so the Lasso part takes proximal steps (prox_l1, soft-thresholding), which produce
exact zeros. Each fit must land on scikit-learn's optimum. (The article's L2 objective
(1/2m)||X theta - y||^2 + (lambda/2m)||theta||^2 is Ridge(alpha=lambda)'s objective divided by 2m.)"""

DROPOUT = """\
The article's dropout example (section 4.2) cannot learn anything:
* model() draws W1, b1, W2, b2 with np.random.rand on every call, so each iteration evaluates a new random
  network and nothing carries over; the update changes `theta`, which model() never reads, using the
  gradient of a linear model (X.T @ (y_pred - y)) -- no backpropagation through either layer or the mask.
* np.dot(input_layer, W1[j]) pairs a 10-vector with row j of the (10, 5) W1, a 5-vector: it raises
  "shapes (10,) and (5,) not aligned" on the first sample.
* A dropped unit is left at 0 *before* the sigmoid, so it outputs sigmoid(0) = 0.5, not 0; kept units are
  not scaled by 1/(1-p) and there is no evaluation mode, so train and test activations differ in
  expectation. A Python loop draws one np.random.rand() per unit per sample.
Done right below: weights are created once and trained by hand-written backpropagation. Each step draws a
fresh mask with regdrop_fast.dropout (a new Philox offset per call, so the run is reproducible), keeps it as
bits, and dropout_backward sends the gradient through exactly the units that were kept, scaled by 1/(1-p)
(inverted dropout: evaluation uses the plain network). penalty_grad adds the L2 gradient and max_norm
bounds each unit's incoming weight vector, as in Srivastava et al. (2014)."""
