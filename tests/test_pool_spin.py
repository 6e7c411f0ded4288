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


def _env(**extra: str) -> dict[str, str]:
    """This process's environment for a fresh interpreter, without a REGDROP_POOL_SPIN_US of the caller's."""
    env = {k: v for k, v in os.environ.items() if k != "REGDROP_POOL_SPIN_US"}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


@pytest.mark.skipif("REGDROP_POOL_SPIN_US" in os.environ, reason="REGDROP_POOL_SPIN_US sets the window here")
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


@pytest.mark.parametrize("value, expected", [("0", 0), ("50", 50_000), ("0050", 50_000), ("1000000", 10**9),
                                             ("", 200_000), ("-3", 200_000), ("+50", 200_000), (" 50", 200_000),
                                             ("50 ", 200_000), ("1000001", 200_000), ("99999999999", 200_000),
                                             ("12us", 200_000), ("abc", 200_000)], ids=lambda v: repr(v))
def test_environment_sets_the_window(value, expected):
    """REGDROP_POOL_SPIN_US, whole microseconds from 0 to 10^6 in digits only, sets the window at load;
    anything else is ignored (the default), as REGDROP_SIMD ignores a level it does not know."""
    env = _env(REGDROP_POOL_SPIN_US=value)
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


def _busy_seconds_while_idle(setup: str) -> float:
    """Seconds a fresh interpreter's threads spend running or ready to run (Linux's schedstat: a polling
    thread counts whether or not other load lets it have a CPU; elsewhere CPU time) over 0.4 s of sleep
    that starts 50 ms after a pool call made after `setup` (Python statements, with rdf and core imported)."""
    script = textwrap.dedent("""
        import os
        import time
        import numpy as np
        import regdrop_fast as rdf
        from regdrop_fast import _native
        core = _native.core
        def busy():
            if not os.path.exists("/proc/self/task"):
                return time.process_time()
            total = 0
            for t in os.listdir("/proc/self/task"):
                try:
                    with open(f"/proc/self/task/{{t}}/schedstat") as f:
                        run_ns, wait_ns = f.read().split()[:2]
                    total += int(run_ns) + int(wait_ns)
                except (OSError, ValueError):  # a thread that ended meanwhile
                    pass
            return total / 1e9
        {setup}
        x = np.ones({n}, np.float32)
        for _ in range(3):
            rdf.dropout(x, 0.5, seed=1)
        time.sleep(0.05)
        b0 = busy()
        time.sleep(0.4)
        print(busy() - b0)
    """).format(setup=setup, n=N_ALL_THREADS)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    return float(out.stdout.split()[-1])


@needs_two_cpus
def test_idle_pool_costs_no_cpu_after_the_window():
    """The default window (200 us) has long passed 50 ms after the call: the workers sleep. The control
    sets the longest window (1 s), and the same measurement sees a worker poll through the 0.4 s (running
    or waiting for its CPU), so the measurement can tell the two apart."""
    idle = _busy_seconds_while_idle(f"rdf.set_num_threads({CPUS})")
    assert idle < 0.05, f"the pool was busy {idle:.3f} s while idle"
    polling = _busy_seconds_while_idle(f"rdf.set_num_threads({CPUS}); core.set_pool_spin_ns(10**9)")
    assert polling > 0.3, f"a 1 s polling window kept a worker busy only {polling:.3f} s of 0.4 s"


@needs_two_cpus
def test_no_polling_with_more_threads_than_cpus():
    """With more threads than CPUs a polling worker would take a CPU from a thread with work: even the
    longest window (1 s) does not poll."""
    idle = _busy_seconds_while_idle(f"rdf.set_num_threads({CPUS + 1}); core.set_pool_spin_ns(10**9)")
    assert idle < 0.05, f"the pool was busy {idle:.3f} s while idle with {CPUS + 1} threads on {CPUS} CPUs"


@needs_two_cpus
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread affinity is read from /proc (Linux)")
def test_workers_are_kept_off_the_callers_cpu():
    """After a call every worker may run on the CPUs it started with (the caller's) except the one the caller
    ran on (the same one for all), and the caller's own affinity is untouched (only the workers are
    placed). With the window off, or more threads than CPUs, nobody polls, and the workers get their own
    CPUs back at the next call."""
    script = textwrap.dedent("""
        import json
        import os
        import threading
        import numpy as np
        import regdrop_fast as rdf
        core = rdf._native.core
        main = str(threading.get_native_id())
        def affinities():
            found = {}
            for t in os.listdir("/proc/self/task"):
                try:
                    found[t] = sorted(os.sched_getaffinity(int(t)))
                except ProcessLookupError:  # a thread that ended meanwhile
                    pass
            return found
        def workers():
            return [a for t, a in affinities().items() if t not in before]
        before = affinities()
        rdf.set_num_threads(%(cpus)d)
        rdf.dropout_mask(%(n)d, 0.5, seed=1)
        placed = workers()
        caller = affinities()[main]
        core.set_pool_spin_ns(0)
        rdf.dropout_mask(%(n)d, 0.5, seed=1)
        window_off = workers()
        core.set_pool_spin_ns(200000)
        rdf.dropout_mask(%(n)d, 0.5, seed=1)
        placed_again = workers()
        rdf.set_num_threads(%(cpus)d + 1)
        rdf.dropout_mask(%(n)d, 0.5, seed=1)
        oversubscribed = workers()
        print(json.dumps([before[main], caller, placed, window_off, placed_again, oversubscribed]))
    """) % {"cpus": CPUS, "n": N_ALL_THREADS}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    allowed, caller, placed, window_off, placed_again, oversubscribed = json.loads(out.stdout.strip().splitlines()[-1])
    assert caller == allowed
    for workers in (placed, placed_again):
        assert len(workers) == CPUS - 1
        excluded = {tuple(sorted(set(allowed) - set(w))) for w in workers}
        assert len(excluded) == 1 and len(next(iter(excluded))) == 1, (allowed, workers)
    assert window_off == [allowed] * (CPUS - 1)
    assert oversubscribed == [allowed] * CPUS
