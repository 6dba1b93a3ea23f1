"""The results: a JSON file per run (and latest.json beside it), and a short table for people."""

from __future__ import annotations

import json
import os
from pathlib import Path

RESULT_WORDS = {True: 'pass', False: 'MISS', None: 'info'}


def write_results(results: dict, results_dir: Path, stamp: str) -> Path:
    """Write <results_dir>/<stamp>.json and latest.json (each complete before it appears); the first's path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, sort_keys=False) + '\n'
    path = results_dir / ('%s.json' % stamp)
    for destination in (path, results_dir / 'latest.json'):
        partial = destination.with_name(destination.name + '.partial')
        partial.write_text(text, encoding='utf-8')
        os.replace(partial, destination)
    return path


def _seconds_or_rate(side: dict) -> str:
    """'median / best' of one side of a ratio figure: MB/s for throughputs, seconds for times."""
    if 'mb_per_s' in side:
        return '%.1f / %.1f MB/s' % (side['mb_per_s']['median'], side['mb_per_s']['best'])
    return '%.2f / %.2f s' % (side['seconds']['median'], side['seconds']['min'])


def _target_text(figure: dict) -> str:
    goal = figure['target']
    if goal is None:
        return '-'
    unit = ' %s' % figure['unit'] if figure['kind'] == 'value' else 'x'
    return '%s %g%s' % (goal['op'], goal['limit'], unit)


def figure_row(figure: dict) -> tuple:
    """(id, measured, baseline, ratio, CPU ratio, target, result) of one figure, as text; the CPU ratio is CPU
    seconds used, measured over baseline (lower is cheaper)."""
    if figure['kind'] == 'fit':
        fit = figure['fit']
        if fit['seconds_per_gb'] is None:
            return (figure['id'], 'one size only: no fit', '', '', '', '-', RESULT_WORDS[None])
        return (figure['id'], '%.1f s fixed + %.1f s per GB' % (fit['fixed_seconds'], fit['seconds_per_gb']), '', '', '', '-',
                RESULT_WORDS[None])
    if figure['kind'] == 'value':
        values = figure['values']
        return (figure['id'], 'max %.1f, median %.1f %s' % (values['max'], values['median'], figure['unit']), '', '', '',
                _target_text(figure), RESULT_WORDS[figure['passed']])
    cpu = figure.get('cpu_seconds')
    return (figure['id'], _seconds_or_rate(figure['measured']), _seconds_or_rate(figure['baseline']),
            '%.3fx (min %.3fx)' % (figure['ratio']['medians'], figure['ratio']['minimums']),
            '%.2fx' % cpu['ratio_of_medians'] if cpu else '', _target_text(figure), RESULT_WORDS[figure['passed']])


def _part_line(name: str, part: dict) -> str:
    """How long a part took and how busy the machine was meanwhile (its own runs included)."""
    if 'cpus' not in part:
        return 'part %s: interrupted' % name
    return 'part %s: %.0f s; CPUs %.0f%% busy, %.0f%% iowait, %.0f%% steal; load average %.1f -> %.1f' % (
        name, part['seconds'], part['cpus']['busy'] * 100, part['cpus']['iowait'] * 100, part['cpus']['steal'] * 100,
        part['load_average_start'][0], part['load_average_end'][0])


def table(results: dict) -> str:
    """The figures as aligned columns, then what was skipped or failed."""
    rows = [('figure', 'measured (median / best)', 'baseline (median / best)', 'ratio', 'cpu ratio', 'target', 'result')]
    rows += [figure_row(figure) for figure in results['figures']]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ['  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, '  '.join('-' * width for width in widths))
    lines.append('')
    lines += [_part_line(name, part) for name, part in results['parts'].items()]
    lines += ['skipped %s: %s' % (skipped['part'], skipped['reason']) for skipped in results['skipped']]
    lines += ['FAILED %s: %s' % (error['part'], error['error'].splitlines()[0]) for error in results['errors']]
    return '\n'.join(lines)
