"""Facts recorded with every benchmark run: machine, versions, thread counts, commit, date, command."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import ml_dtypes
import numpy as np

import regdrop_fast as rdf


def cpu_model() -> str:
    """The 'model name' line of /proc/cpuinfo (Linux), else what platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS has none): a busy machine skews timings."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies over all CPUs from /proc/stat; None where there is no such file."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def cpu_busy_fraction(interval: float = 0.5) -> float | None:
    """Fraction of all CPUs' time spent busy during `interval` seconds while this process sleeps: the
    load other processes put on the machine right now (None where /proc/stat is missing)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(interval)
    after = _cpu_times()
    if after is None or after[1] == before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 3)


def git_commit() -> dict | None:
    """Commit (and whether the tree has uncommitted changes) of the checkout the package or the current
    directory lives in; None when neither is a git checkout or git is missing."""
    for where in (Path(rdf.__file__).resolve().parent, Path.cwd()):
        try:
            head = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                                  text=True, timeout=10)
            if head.returncode != 0:
                continue
            status = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10)
            return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()), "where": str(where)}
        except (OSError, subprocess.SubprocessError):
            return None
    return None


def build_commit() -> dict:
    """The commit the package was built from, as recorded at build time (CMakeLists.txt writes
    regdrop_fast/_build_info.py), so an installed copy knows it outside the checkout: commit ("unknown" when
    the build had no git metadata), dirty, and where the facts came from."""
    from regdrop_fast._info import _build_info

    info = _build_info()
    if info:
        return {"commit": info["git_commit"], "dirty": info["git_dirty"], "source": "recorded at build time"}
    return {"commit": "unknown", "dirty": None,
            "source": "no _build_info.py beside the package (extension copied in by hand, not built by pip)"}


def collect(command: str, frameworks: dict, settings: dict) -> dict:
    """Everything needed to read or reproduce a results.json."""
    return {
        "command": command,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "usable_cpus": usable_cpus(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "git": git_commit(),  # the checkout the package or the current directory lives in, now
        "build": build_commit(),  # the commit the installed package was built from
        "load_average_end": load_average(),
        "backend_info": rdf.backend_info(),
        "versions": {
            "regdrop_fast": rdf.__version__,
            "numpy": np.__version__,
            "ml_dtypes": ml_dtypes.__version__,
            **{name: fw.version for name, fw in frameworks.items() if name != "numpy"},
        },
        "threads": {
            "regdrop_fast": rdf.get_num_threads(),
            "numpy": "1 (elementwise NumPy is single-threaded)",
            **{name: fw.threads() for name, fw in frameworks.items() if name != "numpy"},
        },
        "settings": settings,
    }
