"""The follower for tests, the demo and the benchmarks: the program started directly, a writer that logs every
acknowledged document, and what a chain holds, read back from the repository.

    writer = Writer(cluster, db='bigchain', rate=50)        # votes and blocks, BigchainDB-shaped, in a thread
    with FollowerProcess(workdir, config) as follower:       # roles/follower/files/rethinkdb_follower.py --config ...
        follower.wait_following()
        writer.start(); ...; writer.stop()
        follower.wait_durable(writer.acknowledged())
    held = chain_contents(repository, cluster)               # base and segment documents of every chain
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from rethinkdb import RethinkDB
from rethinkdb.errors import ReqlError

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_base import archive_documents
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_format import INSERT
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_store import ChainStore, list_chains
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_catalog import read_manifest
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import format_time
from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import REPO_ROOT

PROGRAM = REPO_ROOT / 'roles' / 'follower' / 'files' / 'rethinkdb_follower.py'
r = RethinkDB()


def sha3(text: str) -> str:
    return hashlib.sha3_256(text.encode('utf-8')).hexdigest()


def block_document(number: int, salt: str) -> dict:
    """A block shaped like BigchainDB 0.10's."""
    transaction = {'id': sha3('%s-tx-%d' % (salt, number)), 'operation': 'CREATE', 'asset': {'data': {'serial': number}}}
    body = {'timestamp': str(int(time.time())), 'transactions': [transaction], 'node_pubkey': 'node-%s' % salt,
            'voters': ['node-a', 'node-b', 'node-c']}
    return {'id': sha3('%s-block-%d' % (salt, number)), 'block': body, 'signature': secrets.token_hex(32)}


def vote_document(number: int, salt: str, block_id: str) -> dict:
    """A vote shaped like BigchainDB 0.10's."""
    vote = {'voting_for_block': block_id, 'previous_block': block_id, 'is_block_valid': True, 'invalid_reason': None,
            'timestamp': str(int(time.time()))}
    return {'id': sha3('%s-vote-%d' % (salt, number)), 'node_pubkey': 'node-%s' % salt, 'vote': vote, 'signature': secrets.token_hex(32)}


class Writer:
    """Inserts blocks and votes (one block, then three votes, over and over) at a steady rate, or in batches, and
    logs every document whose insert the server acknowledged, with when. An insert that fails (a server away) is
    tried again on the next server with the same document; a duplicate key then means the first try had landed."""

    def __init__(self, cluster, db: str = 'bigchain', rate: float = 50.0, batch: int = 1, nodes: tuple = (1,), salt: str | None = None):
        self.cluster = cluster
        self.db = db
        self.rate = rate
        self.batch = batch
        self.nodes = list(nodes)
        self.salt = salt or secrets.token_hex(4)
        self.acked: dict = {}
        self.failures = 0
        self._number = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection = None
        self._node = 0
        self._lock = threading.Lock()

    def documents(self, count: int) -> list:
        """The next documents to write: (table, document)."""
        made = []
        for _each in range(count):
            self._number += 1
            if self._number % 4 == 1:
                self._block = block_document(self._number, self.salt)
                made.append(('bigchain', self._block))
            else:
                made.append(('votes', vote_document(self._number, self.salt, self._block['id'])))
        return made

    def _connect(self):
        if self._connection is None:
            node = self.nodes[self._node % len(self.nodes)]
            self._connection = self.cluster.connect(node, timeout=5)
        return self._connection

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(ReqlError, OSError):
                self._connection.close(noreply_wait=False)
        self._connection = None
        self._node += 1

    def write(self, documents: list) -> None:
        """Insert documents (of one or both tables) until the server acknowledges each; log them."""
        by_table: dict = {}
        for table, document in documents:
            by_table.setdefault(table, []).append(document)
        for table, batch in by_table.items():
            while not self._stop.is_set() or batch:
                try:
                    result = r.db(self.db).table(table).insert(batch, conflict='error').run(self._connect())
                except (ReqlError, OSError):
                    self.failures += 1
                    self._drop()
                    if self._stop.wait(0.2):
                        return
                    continue
                if result['errors'] and 'Duplicate primary key' not in str(result.get('first_error')):
                    self.failures += 1
                    time.sleep(0.2)
                    continue
                moment = time.time()
                with self._lock:
                    for document in batch:
                        self.acked[(table, document['id'])] = moment
                break

    def _run(self) -> None:
        interval = self.batch / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.write(self.documents(self.batch))
            next_at += interval
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()

    def start(self) -> Writer:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name='writer', daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        self._drop()

    def acknowledged(self) -> dict:
        """(table, id) -> when the server acknowledged it (seconds since the epoch)."""
        with self._lock:
            return dict(self.acked)


def cluster_whereabouts(cluster, db: str):
    """whereabouts(keys) for wait_durable: which running servers hold each (table, id), read from each server's own
    copy (read_mode outdated), and each table's primary."""
    def whereabouts(keys: list) -> str:
        held = dict((key, []) for key in keys)
        primaries = {}
        for node in cluster.running_nodes():
            try:
                with cluster.connect(node.name, timeout=5) as connection:
                    for table, key in keys:
                        if r.db(db).table(table).get(key).run(connection, read_mode='outdated') is not None:
                            held[(table, key)].append(node.name)
                    for table in sorted(set(table for table, _key in keys)):
                        primaries[table] = r.db(db).table(table).config()['shards'][0]['primary_replica'].run(connection)
            except (ReqlError, OSError) as exc:
                held.setdefault('errors', []).append('%s: %s' % (node.name, exc))
        return 'held by %s; configured primaries %s' % (held, primaries)
    return whereabouts


def follower_config(cluster, repository: str, state_dir: Path, db: str = 'bigchain', nodes: tuple = (1,), **settings) -> dict:
    """A follower configuration for a harness cluster: its tables of db, the servers of the nodes named."""
    config = dict(cluster='rethinkdb', repository=repository, servers=['%s:%d' % (cluster.host, cluster.node(node).driver_port) for node in nodes],
                  state_dir=str(state_dir), tables=['%s.bigchain' % db, '%s.votes' % db], seal_seconds=1.0, base_check_seconds=0,
                  liveness_seconds=3)
    if cluster.password_file is not None:
        config['password_file'] = str(cluster.password_file)
    config.update(settings)
    return config


class FollowerProcess:
    """The follower program run directly from the collection, as the role's process mode and systemd unit run it."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = config
        self.config_file = self.workdir / 'follower.json'
        self.config_file.write_text(json.dumps(config, indent=2))
        self.log_file = self.workdir / 'follower.log'
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> FollowerProcess:
        env = dict(os.environ, PYTHONPATH='%s:%s' % (REPO_ROOT / '.build' / 'collections', REPO_ROOT))
        self.starts += 1
        with open(self.log_file, 'a', encoding='utf-8') as log:
            self.process = subprocess.Popen([sys.executable, str(PROGRAM), '--config', str(self.config_file)], env=env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (it seals what is open) and wait."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL: what is not sealed is lost from memory."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def __enter__(self) -> FollowerProcess:
        """Start the follower unless it runs already."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def status(self) -> dict:
        try:
            return json.loads((Path(self.config['state_dir']) / 'status.json').read_text())
        except (OSError, ValueError):
            return {}

    def log(self) -> str:
        return self.log_file.read_text(errors='replace') if self.log_file.exists() else ''

    def wait(self, check, what: str, timeout: float = 90.0) -> dict:
        """Poll the status until check(status) is true; AssertionError with the log's end otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if status and status.get('pid') == self.process.pid and check(status):
                return status
            if self.process.poll() is not None:
                raise AssertionError('the follower exited (%s) before %s:\n%s' % (self.process.returncode, what, self.log()[-4000:]))
            if time.monotonic() > deadline:
                raise AssertionError('the follower did not reach %s in %.0f s (status %s):\n%s' % (what, timeout, status, self.log()[-4000:]))
            time.sleep(0.1)

    def wait_following(self, timeout: float = 90.0) -> dict:
        return self.wait(lambda status: status['state'] == 'following', 'following every table', timeout)

    def wait_durable(self, acknowledged: dict, store_reader, timeout: float = 90.0, whereabouts=None) -> None:
        """Wait until every acknowledged document is in the chain (store_reader() returns what the chain holds);
        whereabouts(keys), when given, says where the cluster holds the missing ones."""
        deadline = time.monotonic() + timeout
        while True:
            missing = set(acknowledged) - set(store_reader().documents)
            if not missing:
                return
            if time.monotonic() > deadline:
                examples = sorted(missing)[:3]
                raise AssertionError('%d acknowledged documents never reached the chain (e.g. %s, acknowledged at %s; %s); status %s:\n%s' % (
                    len(missing), examples, [format_time(datetime.datetime.fromtimestamp(acknowledged[key], datetime.timezone.utc)) for key in examples],
                    whereabouts(examples) if whereabouts else 'whereabouts not asked', self.status(), self.log()[-4000:]))
            time.sleep(0.5)


class ChainContents:
    """What the chains of a cluster hold: every document (table, id) -> the places it is in (base or segment),
    every alarm, every gap closed, and the chains' entries."""

    def __init__(self):
        self.places: dict = {}
        self.documents: dict = {}
        self.alarms: list = []
        self.gaps: list = []
        self.chains: list = []

    def repeated(self) -> dict:
        """Documents held in more than one place of one chain."""
        return dict((key, places) for key, places in self.places.items() if len(places) > 1)


def chain_contents(repository, cluster: str, chain_id: str | None = None) -> ChainContents:
    """Read a chain (the newest, or chain_id) back whole: its base set's archive and every segment."""
    store = ChainStore(repository, cluster)
    contents = ChainContents()
    contents.chains = list_chains(store)
    chosen = [entry for entry in contents.chains if chain_id in (None, entry['chain_id'])][:1]
    for entry in chosen:
        chain, _content = store.read_chain(entry['chain_id'])
        manifest, _problems = read_manifest(repository, cluster, chain['base']['set_id'])
        part = [part for part in manifest['parts'] if part['path'].startswith('dump/')][0]
        stream = repository.open_part(cluster, manifest['set_id'], part['path'])
        try:
            for table, key, document in archive_documents(stream, part.get('compression', 'gzip'), chain['tables'], part['sha256']):
                _note(contents, (table.split('.', 1)[1], key), 'base', document)
        finally:
            stream.close()
        for seq in range(1, entry['last_seq'] + 1):
            record, _bytes = store.read_segment_record(entry['chain_id'], seq)
            contents.gaps += [dict(gap, seq=seq) for gap in record['gaps']]
            for data in store.data_records(entry['chain_id'], record):
                if data['op'] == INSERT:
                    _note(contents, (data['table'].split('.', 1)[1], data['key']), 'segment %d' % seq, data['doc'], data['at'])
                else:
                    contents.alarms.append(dict(data, seq=seq))
    return contents


def _note(contents: ChainContents, key: tuple, place: str, document: dict, received_at: str | None = None) -> None:
    contents.places.setdefault(key, []).append(place)
    contents.documents[key] = dict(doc=document, at=received_at, place=place)


def restore_into(cluster, repository, cluster_name: str, db: str, target_db: str, until: str | None = None, node=1) -> dict:
    """Load a chain (its base's documents, then its segments' up to until) into fresh tables of target_db with
    conflict=error, as the restore does; returns the documents per table (a document twice fails the insert)."""
    contents = chain_contents(repository, cluster_name)
    counts = {}
    with cluster.connect(node) as connection:
        if target_db in r.db_list().run(connection):
            r.db_drop(target_db).run(connection)
        r.db_create(target_db).run(connection)
        for table in ('bigchain', 'votes'):
            r.db(target_db).table_create(table).run(connection)
        batches: dict = {'bigchain': [], 'votes': []}
        for (table, _key), held in sorted(contents.documents.items(), key=lambda item: (item[1]['at'] or '', str(item[0]))):
            if until is not None and held['at'] is not None and held['at'] > until:
                continue
            batches[table].append(held['doc'])
        for table, documents in batches.items():
            for start in range(0, len(documents), 500):
                result = r.db(target_db).table(table).insert(documents[start:start + 500], conflict='error').run(connection)
                assert result['errors'] == 0, result
            counts[table] = r.db(target_db).table(table).count().run(connection)
    return counts
