"""The thread pool's polling window and worker placement (csrc/cpu/parallel.cpp).

After a call, idle workers poll for the next one for pool_spin_ns() (a waiting caller polls for its helpers
the same way) and then sleep, so an idle pool costs no CPU once the window has passed; with more threads than
CPUs nobody polls; the workers are kept off the CPU the caller ran on. Polling changes speed only
(bench/pool_spin_ab.py measures it), so results are compared with the window on and off. The CPU-time tests
run in a fresh interpreter: other tests' threads (torch, dask) would be counted in this process's time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import num_threads, pool_polling

import regdrop_fast as rdf
from regdrop_fast import _native

CPUS = _native.core.default_num_threads()
# Elements for a call that gives every thread of CPUS + 1 a task (tasks of 2^16 elements), 2^20 at least.
N_ALL_THREADS = max(1 << 20, (CPUS + 1) << 16)
needs_two_cpus = pytest.mark.skipif(CPUS < 2, reason="needs 2 or more CPUs to run a worker beside the caller")


def test_default_window_and_setting():
    core = _native.core
    assert core.pool_spin_ns() == 200_000
    with pool_polling(5_000):
        assert core.pool_spin_ns() == 5_000
        core.set_pool_spin_ns(-1)  # negative counts as 0
        assert core.pool_spin_ns() == 0
        core.set_pool_spin_ns(10**18)  # clamped to 1 s
        assert core.pool_spin_ns() == 10**9
    assert core.pool_spin_ns() == 200_000


@pytest.mark.parametrize("value, expected", [("0", 0), ("50", 50_000), ("1000000", 10**9), ("", 200_000),
                                             ("-3", 200_000), ("1000001", 200_000), ("12us", 200_000),
                                             ("abc", 200_000)], ids=lambda v: repr(v))
def test_environment_sets_the_window(value, expected):
    """REGDROP_POOL_SPIN_US, whole microseconds from 0 to 10^6, sets the window at load; anything else is
    ignored (the default), as REGDROP_SIMD ignores a level it does not know."""
    env = dict(os.environ, REGDROP_POOL_SPIN_US=value)
    script = "from regdrop_fast import _native; print(_native.core.pool_spin_ns())"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) == expected


def _calls(threads: int) -> list[np.ndarray]:
    """Multi-task calls of each pool user's kind: dropout forward and backward, a mask, penalty_grad over a
    list (a reduction combined in task order)."""
    with num_threads(threads):
        x = np.random.default_rng(5).standard_normal(3 * (1 << 16) + 77).astype(np.float32)
        y, mask = rdf.dropout(x, 0.3, seed=11)
        dx = rdf.dropout_backward(x, mask)
        bits = rdf.dropout_mask(1 << 19, 0.5, seed=2).bits
        params = [np.random.default_rng(k).standard_normal((300, 700)) for k in range(4)]
        grads = [np.zeros_like(p) for p in params]
        value = rdf.penalty_grad(params, grads, l1=1e-3, l2=1e-2)
        return [y, np.asarray(mask.bits), dx, np.asarray(bits), np.asarray(value), *grads]


@pytest.mark.parametrize("threads", sorted({2, CPUS, CPUS + 1, 4 * CPUS}), ids=lambda t: f"threads{t}")
def test_same_results_with_and_without_polling(threads):
    """Polling is a way of waiting: the window on, off, or long, and more threads than CPUs (no polling),
    give the results of one thread."""
    expected = _calls(1)
    for window in (0, 200_000, 50_000_000):
        with pool_polling(window):
            for _ in range(3):  # back to back: the second and third calls find the workers polling
                got = _calls(threads)
                for a, b in zip(got, expected):
                    np.testing.assert_array_equal(a, b)


def _cpu_seconds_while_idle(setup: str) -> float:
    """CPU seconds a fresh interpreter spends over 0.4 s of sleep that starts 50 ms after a pool call made
    after `setup` (Python statements, with rdf and core imported)."""
    script = textwrap.dedent("""
        import time
        import numpy as np
        import regdrop_fast as rdf
        from regdrop_fast import _native
        core = _native.core
        {setup}
        x = np.ones({n}, np.float32)
        for _ in range(3):
            rdf.dropout(x, 0.5, seed=1)
        time.sleep(0.05)
        t0 = time.process_time()
        time.sleep(0.4)
        print(time.process_time() - t0)
    """).format(setup=setup, n=N_ALL_THREADS)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split()[-1])


@needs_two_cpus
def test_idle_pool_costs_no_cpu_after_the_window():
    """The default window (200 us) has long passed 50 ms after the call: the workers sleep. The control
    sets a window of 10 s, and the same measurement sees a worker poll (at least a quarter of the 0.4 s: the
    worker may share its CPU with other load), so the measurement can tell the two apart."""
    idle = _cpu_seconds_while_idle(f"rdf.set_num_threads({CPUS})")
    assert idle < 0.05, f"the pool used {idle:.3f} s of CPU while idle"
    polling = _cpu_seconds_while_idle(f"rdf.set_num_threads({CPUS}); core.set_pool_spin_ns(10**10)")
    assert polling > 0.1, f"a 10 s polling window used only {polling:.3f} s of CPU in 0.4 s"


@needs_two_cpus
def test_no_polling_with_more_threads_than_cpus():
    """With more threads than CPUs a polling worker would take a CPU from a thread with work: even a 10 s
    window does not poll."""
    idle = _cpu_seconds_while_idle(f"rdf.set_num_threads({CPUS + 1}); core.set_pool_spin_ns(10**10)")
    assert idle < 0.05, f"the pool used {idle:.3f} s of CPU while idle with {CPUS + 1} threads on {CPUS} CPUs"


@needs_two_cpus
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread affinity is read from /proc (Linux)")
def test_workers_are_kept_off_the_callers_cpu():
    """After a call every worker may run on the CPUs the caller may use except the one the caller ran on
    (the same one for all), and the caller's own affinity is untouched (only the workers are placed).
    With the window off nobody polls, and the workers get all of the CPUs back at the next call."""
    script = textwrap.dedent("""
        import json
        import os
        import threading
        import numpy as np
        import regdrop_fast as rdf
        def affinities():
            found = {}
            for t in os.listdir("/proc/self/task"):
                try:
                    found[t] = sorted(os.sched_getaffinity(int(t)))
                except ProcessLookupError:  # a thread that ended meanwhile
                    pass
            return found
        before = affinities()
        rdf.set_num_threads(%d)
        rdf.dropout_mask(%d, 0.5, seed=1)
        allowed = os.sched_getaffinity(0)
        main = threading.get_native_id()
        new = [a for t, a in affinities().items() if t not in before]
        rdf._native.core.set_pool_spin_ns(0)
        rdf.dropout_mask(%d, 0.5, seed=1)
        unplaced = [a for t, a in affinities().items() if t not in before]
        print(json.dumps([sorted(allowed), sorted(os.sched_getaffinity(main)), sorted(new), unplaced]))
    """) % (CPUS, N_ALL_THREADS, N_ALL_THREADS)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    allowed, caller, workers, unplaced = json.loads(out.stdout.strip().splitlines()[-1])
    assert caller == allowed
    assert len(workers) == CPUS - 1
    excluded = {tuple(sorted(set(allowed) - set(w))) for w in workers}
    assert len(excluded) == 1 and len(next(iter(excluded))) == 1, (allowed, workers)
    assert unplaced == [allowed] * (CPUS - 1)

