import numpy as np
import regdrop_fast as rdf

def test_smoke(backend):
    x = backend.asarray(np.ones(100, np.float32))
    y, m = rdf.dropout(x, 0.5, seed=1)
    assert backend.to_numpy(y).shape == (100,)
    if backend.kernels is not None:
        assert backend.kernels.device_count() == 1 and backend.kernels.device_name(0) == "emulated"
