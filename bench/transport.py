"""Parts transfer and role: backup parts crossing SSH with become, on the SSH lab (tests/harness/sshlab: every
node a network namespace with its own sshd and server, ansible-playbook in a controller namespace logging in as
a non-root user with sudo).

transfer: the `transfer` action fetching a part from a node, as the backup role does, in a one-task play, against
`ssh node cat part > file` through the same SSH options; the peak memory of each side's process tree on the
controller (ansible-playbook, its workers, their ssh and sftp clients and the SSH master they share).

role: the whole backup role (method snapshot, btrfs, repository on the controller) on 3 nodes whose data
directories are padded to each size asked, the time per run fitted as fixed + per_GB x size; the peak memory of
ansible-playbook's tree on the controller and of the snapshot module's process on each node, at every size.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import yaml
from rethinkdb import RethinkDB

from ansible_collections.bigchaindb.rethinkdb.tests.harness import bigchaindb_data, netns, sshlab

from bench.datasets import TABLE_FILE_BYTES, regular_files
from bench.dump import task_result
from bench.procs import Ansible, BenchError, PeakMemory, argv_roots, child_environment
from bench.timing import Contender, Sample, alternate, summary, throughput_figure, timed, value_figure

MEMORY_LIMIT_MB = 200
TRANSFER_LIMIT = 0.8
CHUNK = 1 << 20
TRANSFER_TASK = 'transfer under test'
ARCHIVE_TASK = "Archive every node's snapshot into its part of the set"
FETCH_TASK = "Fetch every node's archive into the set, checked on arrival"
COMMIT_TASK = 'Commit the set'
# Where the padding lives in each node's data directory: a directory of its own, which the servers never open.
PADDING_DIR = 'bench-padding'
# The lab's small BigchainDB data set (3 replicas, so every node holds all of it) under the padding.
LAB_BLOCKS = 12
# Seconds between the preflight and the shared instant: three nodes' module starts on 2 busy cores.
BARRIER_DELAY = 8
GB = 1e9


def _memory_mb(samples: list, group: str, key: str = 'peak_pss_mb') -> list:
    return [sample.details['memory'][group][key] for sample in samples]


def _controller_group(ansible: Ansible, lab: sshlab.Lab):
    """ansible-playbook's tree, and the SSH masters its workers started (ControlPersist: they leave the tree)."""
    control = str(lab.control_path_dir)
    playbook = argv_roots(ansible.runs_here)
    masters = argv_roots(lambda argv: argv[0] == 'ssh' and any(control in arg for arg in argv))
    return lambda table: playbook(table) + masters(table)


def _module_group(module: str, namespace: str):
    """The processes running a module (`python AnsiballZ_<module>.py`) inside one node's network namespace."""
    wanted = 'net:[%s]' % netns.inode(namespace)

    def in_namespace(pid: int) -> bool:
        try:
            return os.readlink('/proc/%d/ns/net' % pid) == wanted
        except OSError:
            return False
    running = argv_roots(lambda argv: len(argv) > 1 and argv[1].endswith('AnsiballZ_%s.py' % module))
    return lambda table: [pid for pid in running(table) if in_namespace(pid)]


def sampled(action, groups: dict) -> Sample:
    """timed(action) with the peak memory of `groups` (see PeakMemory) in its details as `memory`."""
    sampler = PeakMemory(groups)
    sampler.start()
    try:
        sample = timed(action)
    finally:
        memory = sampler.stop()
    sample.details = dict(sample.details or {}, memory=memory)
    return sample


def write_random_part(path: Path, size: int, owner: str) -> str:
    """A part of `size` random bytes (what an archive compressed or encrypted looks like to a transfer), given
    to `owner`; its sha256."""
    digest = hashlib.sha256()
    with open(path, 'wb') as stream:
        written = 0
        while written < size:
            chunk = os.urandom(min(CHUNK * 16, size - written))
            digest.update(chunk)
            stream.write(chunk)
            written += len(chunk)
    shutil.chown(path, owner, owner)
    return digest.hexdigest()


def ssh_argv(lab: sshlab.Lab, node: sshlab.LabNode, command: list) -> list:
    """ssh to a node as the lab user with the inventory's own SSH options (key, known hosts, time-outs)."""
    options = []
    for option in ('UserKnownHostsFile=%s' % lab.known_hosts, 'IdentitiesOnly=yes', 'ConnectTimeout=5', 'ServerAliveInterval=5',
                   'ServerAliveCountMax=2', 'BatchMode=yes'):
        options += ['-o', option]
    login = ['-p', str(sshlab.SSH_PORT), '%s@%s' % (sshlab.SSH_USER, node.address), '--']
    return lab.controller_argv() + ['ssh', '-i', str(lab.private_key)] + options + login + command


class TransferContenders:
    """A part on node1 fetched to the controller: by the transfer action in a one-task play, and by ssh cat."""

    def __init__(self, lab: sshlab.Lab, work: Path, part: Path, sha256: str, size: int):
        self.lab = lab
        self.node = lab.node('node1')
        self.part = part
        self.sha256 = sha256
        self.size = size
        self.fetched = work / 'fetched'
        self.fetched.mkdir(mode=0o700, parents=True)
        self.ansible = Ansible(work / 'ansible', lab.inventory(), command_prefix=lab.controller_argv())
        self.play = work / 'transfer.yml'
        transfer = dict(direction='fetch', src=str(part), dest='{{ bench_dest }}', sha256=sha256, bytes=size)
        task = {'name': TRANSFER_TASK, 'bigchaindb.rethinkdb.transfer': transfer}
        self.play.write_text(yaml.safe_dump([dict(name='bench', hosts='node1', gather_facts=False, tasks=[task])], sort_keys=False))
        self.controller = _controller_group(self.ansible, lab)

    def dest(self, name: str, rep: int) -> Path:
        return self.fetched / ('%s-%d' % (name, rep)) / 'data.tar.zst'

    def remove(self, name: str):
        return lambda rep: shutil.rmtree(self.dest(name, rep).parent)

    def action(self, rep: int) -> Sample:
        dest = self.dest('action', rep)

        def fetch() -> dict:
            result = task_result(self.ansible.playbook(self.play, '-e', 'bench_dest=%s' % dest), TRANSFER_TASK, 'node1')
            if result.get('sha256') != self.sha256 or result.get('bytes') != self.size:
                raise BenchError('the transfer action fetched %s bytes with sha256 %s, not the part' % (result.get('bytes'), result.get('sha256')))
            return {}
        return sampled(fetch, dict(controller=self.controller))

    def ssh_cat(self, rep: int) -> Sample:
        dest = self.dest('ssh', rep)
        dest.parent.mkdir(mode=0o700)
        started: list = []

        def copy() -> dict:
            with open(dest, 'wb') as output:
                process = subprocess.Popen(ssh_argv(self.lab, self.node, ['cat', str(self.part)]), stdin=subprocess.DEVNULL, stdout=output,
                                           stderr=subprocess.PIPE, env=child_environment())
                started.append(process.pid)
                errors = process.communicate()[1]
            if process.returncode != 0 or dest.stat().st_size != self.size:
                raise BenchError('ssh cat exited %d with %d bytes: %s' % (process.returncode, dest.stat().st_size, errors.decode(errors='replace')))
            return {}
        return sampled(copy, dict(controller=lambda table: started[:1]))

    def ping(self, rep: int) -> Sample:
        def play() -> dict:
            self.ansible.one_task('node1', 'ansible.builtin.ping', {})
            return {}
        return timed(play)


def measure_transfer(work: Path, part_mib: int, reps: int, say=print) -> list:
    """A part of part_mib MiB crosses SSH: the transfer action (fetch, as the backup role does) vs ssh cat,
    alternated, with the peak memory of each side on the controller; a one-task play of ping beside them, for
    ansible-playbook's own start."""
    work.mkdir(parents=True, exist_ok=True)
    size = part_mib << 20
    with sshlab.Lab(size=1) as lab:
        source = lab.root / 'bench-part'
        source.mkdir(mode=0o700)
        shutil.chown(source, sshlab.SSH_USER, sshlab.SSH_USER)
        part = source / 'data.tar.zst'
        started = time.perf_counter()
        sha256 = write_random_part(part, size, sshlab.SSH_USER)
        say('   a part of %d MiB of random bytes on node1 in %.0f s' % (part_mib, time.perf_counter() - started))
        ways = TransferContenders(lab, work / 'transfer', part, sha256, size)
        samples = alternate([Contender('action', 'transfer action (fetch), ansible-playbook', ways.action, ways.remove('action')),
                             Contender('ssh', 'ssh node cat part > file', ways.ssh_cat, ways.remove('ssh')),
                             Contender('ping', 'one-task play of ansible.builtin.ping', ways.ping)], reps, before_each=os.sync, progress=say)
    ping_median = statistics.median(sample.seconds for sample in samples['ping'])
    action_median = statistics.median(sample.seconds for sample in samples['action'])
    ssh_median = statistics.median(sample.seconds for sample in samples['ssh'])
    common = dict(part='%d MiB of random bytes (as an encrypted or compressed archive looks), in a directory of the login user on the node'
                  % part_mib, become=True, ssh_options='the inventory\'s: key, known hosts, time-outs; ansible-playbook adds its '
                  'ControlPersist master for the other tasks; the transfer action opens an uncompressed connection of its own', cores=os.cpu_count())
    memory_action = _memory_mb(samples['action'], 'controller')
    memory_ssh = _memory_mb(samples['ssh'], 'controller')
    return [
        throughput_figure('transfer.fetch', 'a %d MiB part fetched from a node over SSH (transfer action in ansible-playbook, become) vs '
                          'ssh node cat part > file' % part_mib, ('transfer action, whole ansible-playbook run', samples['action']),
                          ('ssh node cat part > file', samples['ssh']), size, TRANSFER_LIMIT,
                          ping_play_seconds=summary([sample.seconds for sample in samples['ping']]),
                          ratio_after_ansible_start=round(ssh_median / max(action_median - ping_median, 1e-3), 3), **common),
        value_figure('transfer.controller_memory', 'peak memory of ansible-playbook\'s process tree on the controller (PSS, summed), '
                     'fetching a %d MiB part' % part_mib, memory_action, 'MB', MEMORY_LIMIT_MB,
                     summed_rss_mb=summary(_memory_mb(samples['action'], 'controller', 'peak_rss_mb'), 1),
                     processes=[sample.details['memory']['controller']['processes'] for sample in samples['action']],
                     ssh_cat_pss_mb=summary(memory_ssh, 1), **common),
    ]


# --- the backup role per GB ---------------------------------------------------------------------------------

def tree_bytes(directory: Path) -> int:
    return sum(size for dummy, size in regular_files(directory))


def pad(data_dir: Path, sources: list, target_bytes: int, round_number: int) -> int:
    """Add copies of the table files `sources` under data_dir/PADDING_DIR (new names each round) until the
    data directory holds target_bytes; the bytes added."""
    padding = data_dir / PADDING_DIR
    padding.mkdir(mode=0o700, exist_ok=True)
    total = tree_bytes(data_dir)
    added = copies = 0
    while total < target_bytes:
        for path, size in sources:
            if total >= target_bytes:
                break
            copies += 1
            shutil.copyfile(path, padding / ('%s-r%d-%d' % (path.name, round_number, copies)))
            total += size
            added += size
    return added


class RoleRuns:
    """The backup role (method snapshot, btrfs) on a 3-node lab, into a repository on the controller."""

    def __init__(self, lab: sshlab.Lab, work: Path):
        self.lab = lab
        self.backups = work / 'backups'
        node_dirs = lab.root / 'bench-node-dirs'
        node_dirs.mkdir(mode=0o700)
        shutil.chown(node_dirs, sshlab.SSH_USER, sshlab.SSH_USER)
        self.ansible = Ansible(work / 'ansible', lab.inventory(rethinkdb_backup_root=str(self.backups), rethinkdb_backup_node_dir=str(node_dirs)),
                               command_prefix=lab.controller_argv())
        self.groups = dict(controller=_controller_group(self.ansible, lab))
        for node in lab.nodes:
            self.groups[node.name] = _module_group('snapshot', node.netns)

    def backup(self) -> Sample:
        def run() -> dict:
            playbook_run = self.ansible.playbook('bigchaindb.rethinkdb.backup', '-e', 'method=snapshot', '-e', 'backend=btrfs',
                                                 '-e', 'backup_barrier_delay=%d' % BARRIER_DELAY)
            committed = task_result(playbook_run, COMMIT_TASK, self.lab.nodes[0].name)
            archived = [task_result(playbook_run, ARCHIVE_TASK, node.name) for node in self.lab.nodes]
            fetched = [task_result(playbook_run, FETCH_TASK, node.name) for node in self.lab.nodes]
            shutil.rmtree(committed['path'])
            return dict(set_id=committed['set_id'], part_bytes=[result['part']['bytes'] for result in archived],
                        raw_bytes=[result['part']['raw_bytes'] for result in archived],
                        archive_seconds=[result['seconds'] for result in archived], fetched_bytes=[result['bytes'] for result in fetched])
        return sampled(run, self.groups)


def load_lab(lab: sshlab.Lab) -> dict:
    """BigchainDB's schema and a few blocks, 3 replicas, so every node's server holds and serves them."""
    r = RethinkDB()
    with lab.connect('node1') as connection:
        bigchaindb_data.create_schema(r, connection, replicas=3)
        inserted = bigchaindb_data.load(r, connection, bigchaindb_data.generate(LAB_BLOCKS))
        r.db(bigchaindb_data.DB).wait(wait_for='all_replicas_ready').run(connection)
    return inserted


def _fit(points: list) -> dict:
    """Least squares of seconds = fixed + per_gb x GB over (GB, seconds) points."""
    sizes = [size for size, dummy in points]
    seconds = [value for dummy, value in points]
    if len(set(sizes)) < 2:
        return dict(fixed_seconds=None, seconds_per_gb=None, points=len(points))
    mean_size, mean_seconds = statistics.fmean(sizes), statistics.fmean(seconds)
    slope = sum((size - mean_size) * (value - mean_seconds) for size, value in points) / sum((size - mean_size) ** 2 for size in sizes)
    fixed = mean_seconds - slope * mean_size
    residuals = [value - (fixed + slope * size) for size, value in points]
    return dict(fixed_seconds=round(fixed, 2), seconds_per_gb=round(slope, 2), gb_per_second=round(1 / slope, 3) if slope > 0 else None,
                max_residual_seconds=round(max(abs(value) for value in residuals), 2), points=len(points))


def measure_role(work: Path, dataset: dict, sizes_gb: list, reps: int, say=print) -> list:
    """The backup role on 3 nodes at each data size per node (GB of 10^9 bytes), smallest first, each node's
    data directory padded with copies of the node data set's table files (the loaded dump cluster's own SQLite
    files) while its server keeps running; time fitted as fixed + per_GB x size, peak memory at every size."""
    sources = [(path, size) for path, size in regular_files(Path(dataset['path'])) if size >= TABLE_FILE_BYTES]
    if not sources:
        raise BenchError('the node data set has no table file to pad the data directories with')
    work.mkdir(parents=True, exist_ok=True)
    fs_mib = int(max(sizes_gb) * GB * 1.15) // (1 << 20) + 1024
    figures = []
    points = []
    by_size = []
    with contextlib.ExitStack() as stack:
        lab = stack.enter_context(sshlab.Lab(size=3, data_fs='btrfs', fs_megabytes=fs_mib))
        loaded = load_lab(lab)
        runs = RoleRuns(lab, work / 'role')
        for round_number, size_gb in enumerate(sorted(sizes_gb)):
            started = time.perf_counter()
            added = [pad(node.data_dir, sources, int(size_gb * GB), round_number) for node in lab.nodes]
            os.sync()
            data_bytes = [tree_bytes(node.data_dir) for node in lab.nodes]
            say('   %g GB per node: %.1f GB of padding added in %.0f s; data directories %s GB' % (
                size_gb, sum(added) / GB, time.perf_counter() - started, ', '.join('%.2f' % (value / GB) for value in data_bytes)))
            samples = []
            for rep in range(reps):
                os.sync()
                sample = runs.backup()
                samples.append(sample)
                say('  rep %d/%d  backup role, 3 nodes x %g GB  %8.1f s  cpu %8.1f s  parts %s MB' % (
                    rep + 1, reps, size_gb, sample.seconds, sample.cpu_seconds, ' '.join('%.0f' % (value / 1e6) for value in sample.details['part_bytes'])))
            node_gb = statistics.fmean(data_bytes) / GB
            median = statistics.median(sample.seconds for sample in samples)
            points += [(node_gb, sample.seconds) for sample in samples]
            node_memory = [max(sample.details['memory'][node.name]['peak_pss_mb'] for node in lab.nodes) for sample in samples]
            entry = dict(size_gb=size_gb, node_data_gb=round(node_gb, 3), seconds=summary([sample.seconds for sample in samples]),
                         seconds_per_gb=round(median / node_gb, 2), cpu_seconds=summary([sample.cpu_seconds for sample in samples]),
                         part_mb=summary([value / 1e6 for sample in samples for value in sample.details['part_bytes']], 1),
                         archive_seconds=summary([value for sample in samples for value in sample.details['archive_seconds']]),
                         controller_memory_mb=summary(_memory_mb(samples, 'controller'), 1),
                         controller_memory_rss_mb=summary(_memory_mb(samples, 'controller', 'peak_rss_mb'), 1),
                         node_module_memory_mb=summary(node_memory, 1),
                         node_module_memory_rss_mb=summary([max(sample.details['memory'][node.name]['peak_rss_mb'] for node in lab.nodes)
                                                            for sample in samples], 1))
            by_size.append(entry)
            label = '%g' % size_gb
            figures.append(value_figure('role.seconds_per_gb.%s' % label, 'backup role (snapshot, btrfs, repository on the controller), 3 '
                                        'nodes x %s GB: seconds per GB of one node\'s data' % label, [sample.seconds / node_gb for sample in samples],
                                        's/GB', judged_on='median', **entry))
            figures.append(value_figure('role.controller_memory.%s' % label, 'peak memory of ansible-playbook\'s tree (PSS), backup role, '
                                        '3 nodes x %s GB' % label, _memory_mb(samples, 'controller'), 'MB', MEMORY_LIMIT_MB,
                                        summed_rss_mb=entry['controller_memory_rss_mb'], part_mb=entry['part_mb']))
            figures.append(value_figure('role.node_module_memory.%s' % label, 'peak memory of the snapshot module on a node (PSS, the largest '
                                        'of 3), archiving %s GB with become' % label, node_memory, 'MB', MEMORY_LIMIT_MB,
                                        summed_rss_mb=entry['node_module_memory_rss_mb'], part_mb=entry['part_mb']))
    fit = _fit(points)
    padding = ('copies of the table files (SQLite, the ReQL test server\'s, or a real server\'s) of the node data set built from the '
               'loaded dump cluster, under <data_dir>/%s, written while the servers run; the servers hold %s documents (3 replicas)'
               % (PADDING_DIR, sum(loaded.values())))
    figures.append(dict(id='role.fit', title='backup role on 3 nodes: time = fixed + per_GB x GB per node (least squares over every run)',
                        kind='fit', fit=fit, sizes=by_size, padding=padding, reps=reps, target=None, passed=None,
                        details=dict(filesystem='btrfs on a loop device per node, %d MiB' % fs_mib, barrier_delay_seconds=BARRIER_DELAY)))
    return figures
