"""The thread pool and the native calls under stress: refused threads, fork, shrinking, Ctrl-C, exit with
daemon threads inside calls.

Each case runs a child Python with a timeout, so a hang fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import regdrop_fast as rdf

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and Linux limits")


def run_child(body: str, timeout: float) -> str:
    """Runs PRELUDE and the body in a fresh interpreter (this test's regdrop_fast on the path); returns its
    stdout."""
    proc = finished_child(body, timeout)
    assert proc.returncode == 0, f"child exited {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    return proc.stdout


def finished_child(body: str, timeout: float) -> subprocess.CompletedProcess:
    """run_child's child, whatever its exit status."""
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(rdf.__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [package_root, env.get("PYTHONPATH", "")] if p)
    try:
        proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"child hung (killed after {timeout} s); stdout so far: {e.stdout!r}, stderr: {e.stderr!r}")
    return proc


PRELUDE = """
import os, numpy as np, regdrop_fast as rdf

def task_count():
    return len(os.listdir("/proc/self/task"))
"""


def test_refused_threads_do_not_hang():
    """With address space too small for 63 thread stacks, set_num_threads(64) and a 2^23-element dropout
    still return the right bits on the threads that could be started, and the process stays usable."""
    out = run_child("""
    import resource
    x = np.random.default_rng(0).standard_normal(1 << 23, dtype=np.float32)
    rdf.set_num_threads(1)
    expected, mask = rdf.dropout(x, 0.3, seed=5)
    y = np.empty_like(x)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    # Room for the 1 MiB of mask bits and a few 8 MiB thread stacks, far from 63 of them.
    resource.setrlimit(resource.RLIMIT_AS, (vm + (48 << 20), hard))
    rdf.set_num_threads(64)
    got, got_mask = rdf.dropout(x, 0.3, seed=5, out=y)
    started = task_count()
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))
    assert np.array_equal(got_mask.bits, mask.bits)
    assert started < 40, f"the limit did not refuse threads ({started} threads): the test proves nothing"
    again, _ = rdf.dropout(x, 0.3, seed=5)  # usable afterwards, with the limit lifted
    assert np.array_equal(again.view(np.uint32), expected.view(np.uint32))
    print("ok", started)
    """, timeout=60)
    assert out.startswith("ok")


def test_fork_while_kernels_run():
    """Children forked while another thread is inside dropouts (GIL released) each finish their own dropout
    call, with the right bits, within 10 s.

    The busy thread runs 2-task calls in a tight loop, so a fork often lands while it holds a lock of the
    thread pool. Before the fork handlers about 1 child in 150 hung: 800 forks catch it nearly always.
    """
    out = run_child("""
    import threading, time
    rdf.set_num_threads(2)
    small = np.ones((1 << 16) + 1, np.float32)
    x = np.random.default_rng(1).standard_normal(1 << 18, dtype=np.float32)
    expected = rdf.dropout(x, 0.25, seed=9)[0].view(np.uint32).copy()
    stop = False

    def busy(a):
        while not stop:
            rdf.dropout(a, 0.5, seed=3)

    workers = [threading.Thread(target=busy, args=(a,)) for a in (small,)]
    for w in workers:
        w.start()
    failure = None
    try:
        for k in range(800):
            pid = os.fork()
            if pid == 0:
                ok = False
                try:
                    rdf.set_num_threads(2 + k % 2)
                    ok = np.array_equal(rdf.dropout(x, 0.25, seed=9)[0].view(np.uint32), expected)
                    ok = ok and rdf.get_num_threads() == 2 + k % 2
                finally:
                    os._exit(0 if ok else 3)
            deadline = time.monotonic() + 10
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    status = "hung"
                    break
                time.sleep(0.0005)
            if status != 0:
                failure = (k, status)
                break
    finally:
        stop = True
        for w in workers:
            w.join()
    assert failure is None, f"fork {failure[0]}: child {failure[1]}"
    print("ok")
    """, timeout=120)
    assert out.startswith("ok")


def test_pool_shrinks_with_set_num_threads():
    """set_num_threads(huge) is capped (max(4 x CPUs, 256)); setting it back down joins the surplus."""
    out = run_child("""
    rdf.set_num_threads(2)
    rdf.dropout_mask((1 << 20,), 0.5, seed=1)
    baseline = task_count()
    rdf.set_num_threads(1 << 16)
    cap = max(4 * len(os.sched_getaffinity(0)), 256)
    assert rdf.get_num_threads() == cap, (rdf.get_num_threads(), cap)
    rdf.dropout_mask((1 << 26,), 0.5, seed=1)  # 1,024 tasks: every allowed thread is started
    peak = task_count()
    assert baseline < peak <= baseline + cap, (baseline, peak)
    rdf.set_num_threads(2)
    rdf.dropout_mask((1 << 20,), 0.5, seed=1)
    after = task_count()
    assert after <= baseline + 1, (baseline, peak, after)
    print("ok", baseline, peak, after)
    """, timeout=60)
    assert out.startswith("ok")


def test_ctrl_c_stops_a_long_call():
    """SIGINT sent once the first task of a 2^27-element float32 dropout has written raises KeyboardInterrupt
    well before the call would end; the output is then partly written. The signal is tied to the call's own
    progress, not to a clock, so a loaded machine cannot let the call finish first (it once did with a fixed
    0.3 s delay). The pool runs the call on 2 threads at the portable SIMD level: 8 chunks of 256 tasks of
    2^16 elements, about 0.15 s each here, and the call stops at the checkpoint after a chunk, so exactly a
    whole number of chunks is written. The arrays are 2 x 512 MiB: first touching 2 x 2 GiB (float64, 2^28)
    took this machine 35-50 s of page faults."""
    out = run_child("""
    import signal, threading, time
    rdf.set_simd("generic")
    rdf.set_num_threads(2)
    n = 1 << 27
    x = np.ones(n, np.float32)
    y = np.full(n, np.nan, np.float32)
    sent = []

    def interrupt():
        while np.isnan(y[0]):  # the first task has not stored yet (the call releases the GIL while it runs)
            time.sleep(0.0002)
        sent.append(time.monotonic())
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt).start()
    try:
        rdf.dropout(x, 0.5, seed=1, out=y)
        raise SystemExit("the call finished: no KeyboardInterrupt")
    except KeyboardInterrupt:
        late = time.monotonic() - sent[0]
    written = int(np.count_nonzero(~np.isnan(y)))
    # Stopped at a checkpoint (the tasks of a chunk all run, none of the next), before the end.
    chunk = 256 << 16
    assert written % chunk == 0 and 0 < written < n, (written, n)
    assert late < 10.0, late  # a hang guard only: timing under a loaded machine proves nothing
    print("ok", late, written / n)
    """, timeout=90)
    assert out.startswith("ok")


@pytest.mark.parametrize("threads", [1, 2])
def test_exit_while_daemon_threads_are_inside_calls(threads):
    """The main thread ends (interpreter finalization) while daemon threads are inside native calls: short
    pool calls, a call of more than 256 tasks (it takes the GIL between chunks for the signal check) and a
    call that returns a value. Each must stay asleep or be ended by CPython, never abort the process.

    Before the GIL was taken back outside destructors, nearly every such exit died with SIGABRT and
    "terminate called without an active exception" (CPython before 3.14 ends such a thread with
    pthread_exit, and that unwind cannot leave the destructor of pybind11's gil_scoped_release).
    Three children per thread count: one would already fail nearly always.

    Only the abort is asserted on. After that fix about 1 child in 50-185 run under pytest still exited with
    SIGSEGV. A core dump showed the long call's thread at its signal check between chunks, after
    finalization: pybind11's gil_scoped_acquire found no thread state (finalization deletes CPython's
    thread-state key) and made one on the runtime's freed lock. The check now takes the GIL back through the
    thread's own saved state (gil.h, with_gil_inside_work), which parks. The crash is rare enough that a clean
    exit status is not asserted here: 400 such children in a loop under pytest all exited cleanly after the
    change (before it, 1 in about 185 crashed in the same loop)."""
    for _ in range(3):
        proc = finished_child(f"""
        import threading
        rdf.set_num_threads({threads})
        short = np.ones(1 << 17, np.float32)
        long = np.ones(300 << 16, np.float32)  # 300 tasks: the chunked path with its signal check
        weights = [np.ones(1 << 16, np.float64)]
        calls = [threading.Semaphore(0) for _ in range(3)]

        def loop(i, call):
            while True:
                call()
                calls[i].release()

        for i, call in enumerate([lambda: rdf.dropout(short, 0.5, seed=1),
                                  lambda: rdf.dropout(long, 0.5, seed=2),
                                  lambda: rdf.penalty(weights, l2=0.5)]):
            threading.Thread(target=loop, args=(i, call), daemon=True).start()
        for c in calls:  # each thread has finished a call and is looping: most of its time is in the next one
            c.acquire()
        print("ok")
        """, timeout=60)
        assert proc.stdout.startswith("ok"), proc
        assert proc.returncode != -signal.SIGABRT and "terminate called" not in proc.stderr, proc
