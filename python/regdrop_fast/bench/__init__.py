"""The benchmark behind `regdrop-fast bench` (see bench/README.md in the source tree).

timing: interleaved repeats and medians; cases: what is measured and how bytes are counted; frameworks:
NumPy / PyTorch / JAX / TensorFlow written the way their users write them; shapes: the penalty parameter
lists (ResNet-50 written out); report: tables and results.json; plot: the PNG; run: the whole command.
"""
