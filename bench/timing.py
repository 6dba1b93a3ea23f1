"""Side-by-side timing: contenders run in turns within one session, and figures built from what they took.

Each repetition runs every contender once, in an order rotated from one repetition to the next, so that a
change in the machine's load (other jobs share it) falls on every contender alike. Ratios compare medians
(the figure judged against its target) and minimums (the least disturbed runs).
"""

from __future__ import annotations

import resource
import statistics
import time
from typing import Callable


class Sample:
    """One timed run: its wall-clock seconds, the CPU seconds it used (when measured), and what the run
    reported besides (bytes, counts, a module's result)."""

    def __init__(self, seconds: float, details: dict | None = None, cpu_seconds: float | None = None):
        self.seconds = seconds
        self.details = details or {}
        self.cpu_seconds = cpu_seconds


def process_cpu_seconds() -> float:
    """User and system CPU seconds of this process (all its threads) and of every child it has waited for.

    On a machine shared with other jobs, wall time says how long a run waited for the CPU as much as how much
    work it did; CPU time says the second.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action: Callable[[], dict | None]) -> Sample:
    """Run action and time it (wall and CPU); its returned dict (if any) becomes the sample's details."""
    cpu_before = process_cpu_seconds()
    started = time.perf_counter()
    details = action()
    return Sample(time.perf_counter() - started, details, process_cpu_seconds() - cpu_before)


class Contender:
    """One command under test: run(rep) returns a Sample; cleanup(rep), untimed, removes what the run made."""

    def __init__(self, name: str, label: str, run: Callable[[int], Sample], cleanup: Callable[[int], None] | None = None):
        self.name = name
        self.label = label
        self.run = run
        self.cleanup = cleanup


def alternate(contenders: list, reps: int, before_each: Callable[[], None] | None = None, progress: Callable[[str], None] = print) -> dict:
    """Run the contenders reps times in rotated order; return their samples by name (in repetition order).

    before_each runs untimed before every run (a sync, so that one run's writeback does not land on the next).
    """
    samples: dict = {contender.name: [] for contender in contenders}
    for rep in range(reps):
        shift = rep % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            if before_each is not None:
                before_each()
            sample = contender.run(rep)
            if contender.cleanup is not None:
                contender.cleanup(rep)
            samples[contender.name].append(sample)
            cpu = '' if sample.cpu_seconds is None else '  cpu %8.3f s' % sample.cpu_seconds
            progress('  rep %d/%d  %-44s %8.3f s%s' % (rep + 1, reps, contender.label, sample.seconds, cpu))
    return samples


def summary(values: list, digits: int = 3) -> dict:
    """Median, minimum and maximum of a series, with the series itself."""
    return dict(median=round(statistics.median(values), digits), min=round(min(values), digits), max=round(max(values), digits),
                samples=[round(value, digits) for value in values])


def seconds_of(samples: list) -> list:
    return [sample.seconds for sample in samples]


def _cpu(measured: list, baseline: list) -> dict:
    """CPU seconds of both sides and their ratio (measured over baseline), when every sample has them."""
    measured_cpu = [sample.cpu_seconds for sample in measured]
    baseline_cpu = [sample.cpu_seconds for sample in baseline]
    if None in measured_cpu or None in baseline_cpu:
        return {}
    return dict(cpu_seconds=dict(measured=summary(measured_cpu), baseline=summary(baseline_cpu),
                                 ratio_of_medians=round(statistics.median(measured_cpu) / statistics.median(baseline_cpu), 3)))


def judge(value: float, op: str, limit: float) -> bool:
    """Whether a figure meets its target ('<=' or '>=')."""
    return value <= limit if op == '<=' else value >= limit


def target(op: str, limit: float, of: str) -> dict:
    """How a figure is judged: the value named by `of` compared with limit."""
    return dict(of=of, op=op, limit=limit)


def time_ratio_figure(figure_id: str, title: str, measured: tuple, baseline: tuple, limit: float | None = None, **details) -> dict:
    """A figure comparing wall times: measured over baseline (lower is better), judged on the ratio of medians.

    measured and baseline are (label, samples).
    """
    measured_seconds, baseline_seconds = seconds_of(measured[1]), seconds_of(baseline[1])
    ratio = dict(medians=round(statistics.median(measured_seconds) / statistics.median(baseline_seconds), 3),
                 minimums=round(min(measured_seconds) / min(baseline_seconds), 3))
    figure = dict(id=figure_id, title=title, kind='time ratio',
                  measured=dict(label=measured[0], seconds=summary(measured_seconds)),
                  baseline=dict(label=baseline[0], seconds=summary(baseline_seconds)),
                  ratio=ratio, details=details, **_cpu(measured[1], baseline[1]))
    return _with_target(figure, ratio['medians'], None if limit is None else target('<=', limit, 'ratio.medians'))


def throughput_figure(figure_id: str, title: str, measured: tuple, baseline: tuple, size_bytes: int, limit: float | None = None,
                      **details) -> dict:
    """A figure comparing throughputs over the same bytes: measured over baseline (higher is better), judged on
    the ratio of the median throughputs."""
    measured_seconds, baseline_seconds = seconds_of(measured[1]), seconds_of(baseline[1])
    ratio = dict(medians=round(statistics.median(baseline_seconds) / statistics.median(measured_seconds), 3),
                 minimums=round(min(baseline_seconds) / min(measured_seconds), 3))
    figure = dict(id=figure_id, title=title, kind='throughput ratio', bytes=size_bytes,
                  measured=dict(label=measured[0], seconds=summary(measured_seconds), mb_per_s=_throughput(size_bytes, measured_seconds)),
                  baseline=dict(label=baseline[0], seconds=summary(baseline_seconds), mb_per_s=_throughput(size_bytes, baseline_seconds)),
                  ratio=ratio, details=details, **_cpu(measured[1], baseline[1]))
    return _with_target(figure, ratio['medians'], None if limit is None else target('>=', limit, 'ratio.medians'))


def _throughput(size_bytes: int, seconds: list) -> dict:
    """MB/s (10^6 bytes) at the median and at the best run."""
    return dict(median=round(size_bytes / 1e6 / statistics.median(seconds), 1), best=round(size_bytes / 1e6 / min(seconds), 1))


def value_figure(figure_id: str, title: str, values: list, unit: str, limit: float | None = None, judged_on: str = 'max', **details) -> dict:
    """A figure of absolute values (skew, take time), judged on their maximum or median."""
    values_summary = summary(values)
    figure = dict(id=figure_id, title=title, kind='value', unit=unit, values=values_summary, details=details)
    return _with_target(figure, values_summary[judged_on], None if limit is None else target('<=', limit, 'values.' + judged_on))


def _with_target(figure: dict, value: float, goal: dict | None) -> dict:
    figure['target'] = goal
    figure['passed'] = None if goal is None else judge(value, goal['op'], goal['limit'])
    return figure
