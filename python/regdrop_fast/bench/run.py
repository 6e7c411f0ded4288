"""`regdrop-fast bench`: run every case, print the tables, write results.json, table.txt and bench.png."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import regdrop_fast as rdf

from . import environment, epilogue, frameworks, plot, report, variants
from . import limits
from .cases import (Case, P, copy_limit_impl, dropout_case, global_case, latency_case, layer_case, layout_case,
                    penalty_case, size_label)
from .constraints import constraint_cases
from .shapes import penalty_lists
from .timing import NOISY_SPREAD, measure

SECTIONS = ("dropout", "penalty", "latency", "layer", "constraints", "layout", "epilogue", "variants", "global")
BUSY_LIMIT = 0.2  # fraction of the CPUs other processes may use before the results carry a warning
COPY_DRIFT_LIMIT = 0.10  # change of the copy bandwidth from the start to the end of the run that is noted
# How to add each peer: CPU builds (a plain `pip install torch` on Linux fetches a multi-GB CUDA build).
PEER_INSTALL = {
    "torch": "python -m pip install torch  (PyTorch's CPU-only build; from PyPI on Linux it is the CUDA build)",
    "jax": "python -m pip install jax",
    "tensorflow": "python -m pip install tensorflow-cpu",
}


@dataclass
class BenchConfig:
    out: Path
    sizes: list[int]
    dtypes: list[str]
    sections: list[str]
    peers: list[str]  # frameworks to compare with; each must import
    repeats: int
    min_sample_s: float
    threads: int | None = None
    tiny: bool = False
    progress: bool = True
    command: str = ""
    quick: bool = False
    skipped_peers: dict[str, str] = field(default_factory=dict)  # name -> why it is not compared


class _Progress:
    """On a terminal: tqdm on stderr when it is installed, else a counter redrawn in place. Otherwise (a log
    file, a pipe, CI) no bar: one plain line per case on stderr."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self.bar = None
        if enabled and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, desc="bench", unit="case", file=sys.stderr, leave=True,
                                dynamic_ncols=True)

    def start(self, label: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(label, refresh=True)
        else:
            line = f"[{self.done + 1}/{self.total}] {label}"
            if sys.stderr.isatty():  # redraw one line in place
                print(line.ljust(60), end="\r", file=sys.stderr, flush=True)
            else:
                print(line, file=sys.stderr, flush=True)

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and sys.stderr.isatty():
            print(file=sys.stderr)


def build_cases(config: BenchConfig, peers: Sequence[frameworks.Framework], notes: list[str]) -> list[Case]:
    cases: list[Case] = []
    if "dropout" in config.sections:
        for op in ("forward", "backward"):
            for dtype in config.dtypes:
                for n in config.sizes:
                    cases.append(dropout_case(op, dtype, n, peers, notes))
    if "penalty" in config.sections:
        for plist in penalty_lists(tiny=config.tiny):
            cases.append(penalty_case(plist, peers, notes))
    if "latency" in config.sections:
        cases.append(latency_case(peers, notes))
    if "layer" in config.sections:
        case = layer_case(max(config.sizes), peers, notes)
        if case is not None:
            cases.append(case)
    if "constraints" in config.sections:
        cases += constraint_cases(peers, notes, tiny=config.tiny)
    if "layout" in config.sections:
        cases += [layout_case(op, max(config.sizes)) for op in ("forward", "forward+backward")]
    if "epilogue" in config.sections:
        names = {fw.name for fw in peers}
        for op in epilogue.OPS:
            for dtype in config.dtypes:
                cases.append(epilogue.epilogue_case(op, dtype, epilogue.TINY_SHAPE if config.tiny else epilogue.SHAPE,
                                                    names, config.tiny, notes))
    if "variants" in config.sections:
        cases += variants.variant_cases(config.dtypes, max(config.sizes), {fw.name for fw in peers}, notes)
    if "global" in config.sections:
        cases += [global_case(op, max(config.sizes)) for op in ("forward", "forward+backward")]
    return cases


def run_cases(cases: Iterable[Case], config: BenchConfig, total: int) -> list[dict]:
    rows: list[dict] = []
    progress = _Progress(total, config.progress)
    try:
        for case in cases:
            progress.start(case.label)
            impls = case.build()
            timings = measure({i.name: i.fn for i in impls}, repeats=config.repeats,
                              min_sample_s=config.min_sample_s)
            rows += report.make_rows(case, impls, timings)
            del impls  # free the case's arrays before the next one allocates
            progress.advance()
    finally:
        progress.close()
    return rows


def peers_summary(peers: Sequence[frameworks.Framework], skipped: dict[str, str]) -> list[str]:
    """Which peers are compared and, when some are missing, the commands that add them."""
    compared = ", ".join(f"{fw.name} {fw.version}" for fw in peers) or "none"
    lines = [f"peers compared: {compared}"]
    if skipped:
        lines[0] += "; not compared: " + ", ".join(f"{name} ({why})" for name, why in skipped.items())
        missing = [name for name, why in skipped.items() if why == "not installed" and name in PEER_INSTALL]
        if missing:
            lines.append("to compare them too, install CPU builds and rerun the same command:")
            lines += [f"    {PEER_INSTALL[name]}" for name in missing]
            if "torch" in missing:
                lines.append("    (a plain `pip install torch` from PyPI is a multi-GB CUDA build on Linux; the "
                             "CPU wheel is about 200 MB)")
    return lines


def _copy_probe(tiny: bool) -> dict:
    """GB/s of the limit copy (limits.copy, the kernels' threads, the task split of a float32 dropout of the
    same bytes) over 2 x 64 MiB (2 x 1 MiB with --tiny): the machine's copy bandwidth, measured at the start
    and again at the end of the run to show drift."""
    total = 2 << 20 if tiny else 128 << 20
    impl = copy_limit_impl(total, limits.tasks_for(total // 8, limits.DROPOUT_TASK_ELEMS))
    t = measure({impl.name: impl.fn}, repeats=3 if tiny else 5, min_sample_s=2e-4 if tiny else 2e-2)[impl.name]
    return {"bytes": impl.bytes, "gbps": impl.bytes / t.median / 1e9, "spread": t.spread,
            "kernel": "regdrop_fast.bench.limits.copy"}


def run(config: BenchConfig) -> int:
    """Run the benchmark described by config; returns the process exit code."""
    notes: list[str] = [f"{name}: not compared ({why})" for name, why in config.skipped_peers.items()]
    if config.threads is not None:
        rdf.set_num_threads(config.threads)
    threads = rdf.get_num_threads()
    cpus = environment.usable_cpus()
    if config.threads is not None and threads != config.threads:
        notes.append(f"--threads {config.threads}: the thread pool is capped at max(4 x CPUs, 256); "
                     f"using {threads} threads")
    if threads > cpus:
        notes.append(f"{threads} threads on {cpus} usable CPUs: the threads share CPUs, so the timings "
                     "include oversubscription")
    for note in notes[len(config.skipped_peers):]:
        print(f"warning: {note}", file=sys.stderr)
    peers = []
    for name in config.peers:
        fw = frameworks.load(name)
        fw.set_threads(threads)  # every framework gets the threads regdrop_fast uses
        peers.append(fw)
    summary = peers_summary(peers, config.skipped_peers)
    for line in summary:
        print(line)
    print(flush=True)

    load_start = environment.load_average()
    busy = environment.cpu_busy_fraction()
    if busy is not None and busy > BUSY_LIMIT:
        notes.append(f"other processes kept {busy:.0%} of the CPUs busy just before the benchmark started: "
                     "timings, multi-threaded ones most, are unreliable; rerun on an idle machine")
    cases = build_cases(config, peers, notes)
    copy_start = _copy_probe(config.tiny)
    rows = run_cases(cases, config, len(cases))
    copy_end = _copy_probe(config.tiny)
    drift = copy_end["gbps"] / copy_start["gbps"] - 1
    if abs(drift) > COPY_DRIFT_LIMIT:
        notes.append(f"the copy bandwidth changed by {drift:+.0%} from the start ({copy_start['gbps']:.1f} GB/s) "
                     f"to the end ({copy_end['gbps']:.1f} GB/s) of the run: the machine's speed drifted "
                     "(other load, clock or thermal changes); compare rows measured together only")
    noisy = [r for r in rows if r["noisy"]]
    if noisy:
        notes.append(f"{len(noisy)} of {len(rows)} rows are noisy (marked {report.NOISY_MARK}: repeat spread "
                     f"(max - min) / median > {NOISY_SPREAD:.0%})")

    # The mask-only ceiling per thread, from the largest dropout case (the least overhead per call).
    masks = [r for r in rows if r.get("ceiling") == "rng" and r["section"] == "dropout"]
    rng_ceiling = None
    if masks:
        big = max(masks, key=lambda r: r["size"])
        rng_ceiling = {"size": big["size"], "threads": threads, "simd": rdf.backend_info()["simd"],
                       "words_per_s": big["words_per_s"], "words_per_s_per_thread": big["words_per_s"] / threads}

    settings = {
        "quick": config.quick, "tiny": config.tiny, "sizes": config.sizes, "dtypes": config.dtypes,
        "sections": config.sections, "repeats": config.repeats, "min_sample_s": config.min_sample_s,
        "p": P, "peers": config.peers,
    }
    meta = environment.collect(config.command, {fw.name: fw for fw in peers}, settings)
    meta["load_average_start"] = load_start
    meta["cpu_busy_before_start"] = busy
    meta["notes"] = notes
    meta["copy_reference"] = {"start": copy_start, "end": copy_end, "change": drift,
                              "drift_limit": COPY_DRIFT_LIMIT}
    meta["rng_ceiling"] = rng_ceiling
    meta["noise"] = {"spread": "(max - min) / median of the repeats' seconds per call",
                     "noisy_above": NOISY_SPREAD, "noisy_rows": len(noisy)}
    meta["peers_summary"] = summary
    meta["threads_requested"] = config.threads
    text = report.format_tables(rows, P)
    header = (f"regdrop_fast {meta['versions']['regdrop_fast']} on {meta['cpu_model']} "
              f"({meta['usable_cpus']} CPUs), simd={meta['backend_info']['simd']}, threads={threads}; "
              f"medians of {config.repeats} interleaved repeats; copy bandwidth ({threads} threads) "
              f"{copy_start['gbps']:.1f} GB/s at the start, {copy_end['gbps']:.1f} at the end")
    if rng_ceiling:
        header += (f"; mask generation alone (n={size_label(rng_ceiling['size'])}) "
                   f"{rng_ceiling['words_per_s_per_thread'] / 1e9:.2f} G words/s per thread")
    header += "\n" + "\n".join(summary)
    print(header)
    print()
    print(text)
    for note in notes:
        print(f"note: {note}")

    config.out.mkdir(parents=True, exist_ok=True)
    json_path = config.out / "results.json"
    report.write_json(json_path, meta, rows)
    (config.out / "table.txt").write_text(header + "\n\n" + text + "\n")
    written = [json_path, config.out / "table.txt"]
    if plot.available():
        png = config.out / "bench.png"
        sizes = ", ".join(size_label(n) for n in config.sizes)
        plot.plot(rows, png, f"regdrop_fast vs peers on {meta['cpu_model']}, {threads} threads "
                             f"(sizes {sizes})")
        written.append(png)
    else:
        print("note: matplotlib is not installed, so no plot was drawn "
              "(pip install 'regdrop_fast[bench]' adds it)")
    print("wrote " + ", ".join(str(p) for p in written))
    print()  # repeated at the bottom, where the reader of a long run looks first
    for line in summary:
        print(line)
    return 0

