"""Facts recorded with every result, so that figures from different machines and runs can be told apart."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
import sys

from ansible.release import __version__ as ansible_core_version
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import server_binary, uses_real_server


def _first_line(argv: list) -> str | None:
    """The first line a tool prints about its version, or None if it is not installed."""
    if shutil.which(argv[0]) is None:
        return None
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = (completed.stdout or completed.stderr).strip().splitlines()
    return lines[0] if lines else None


def _proc_value(path: str, key: str) -> str | None:
    """A 'key: value' line of a /proc file (cpuinfo, meminfo)."""
    try:
        with open(path, encoding='utf-8') as lines:
            for line in lines:
                name, dummy, value = line.partition(':')
                if name.strip() == key:
                    return value.strip()
    except OSError:
        return None
    return None


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_times() -> list:
    """The machine's CPU time counters (/proc/stat 'cpu': user nice system idle iowait irq softirq steal), in ticks."""
    with open('/proc/stat', encoding='ascii') as stat:
        return [int(value) for value in stat.readline().split()[1:9]]


def machine_usage(before: list, after: list) -> dict:
    """How the machine's CPUs spent an interval (everything that ran, not only the benchmark): the shares busy,
    waiting for I/O, and stolen by the hypervisor."""
    spent = [late - early for early, late in zip(before, after)]
    total = sum(spent) or 1
    return dict(busy=round(1 - (spent[3] + spent[4]) / total, 3), iowait=round(spent[4] / total, 3), steal=round(spent[7] / total, 3))


def machine_facts() -> dict:
    """Cores, memory, kernel, Python, ansible-core and the versions of the tools being compared."""
    memory = _proc_value('/proc/meminfo', 'MemTotal')
    return dict(
        cores=os.cpu_count(),
        cpu=_proc_value('/proc/cpuinfo', 'model name'),
        memory_mib=int(memory.split()[0]) // 1024 if memory else None,
        kernel=platform.release(),
        root=os.geteuid() == 0,
        python=platform.python_version(),
        python_implementation=platform.python_implementation(),
        ansible_core=ansible_core_version,
        rethinkdb_driver=_package_version('rethinkdb'),
        zstandard=_package_version('zstandard'),
        zstd=_first_line(['zstd', '--version']),
        tar=_first_line(['tar', '--version']),
        cp=_first_line(['cp', '--version']),
        btrfs_progs=_first_line(['btrfs', '--version']),
    )


def server_facts(cluster) -> dict:
    """Which RethinkDB servers ran (the ReQL test server or RETHINKDB_BIN) and the version they report."""
    r = RethinkDB()
    with cluster.connect() as connection:
        statuses = list(r.db('rethinkdb').table('server_status').run(connection))
    version = statuses[0]['process']['version'] if statuses else None
    match = re.search(r'\d+\.\d+\.\d+', version or '')
    return dict(kind='real rethinkdb (RETHINKDB_BIN)' if uses_real_server() else 'ReQL test server (tests/reql_server)',
                binary=os.path.basename(server_binary()[-1]), version=match.group(0) if match else None, version_string=version,
                servers=len(statuses), python_for_test_server=sys.version.split()[0] if not uses_real_server() else None)
