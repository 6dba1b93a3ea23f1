# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A BigchainDB client's own backup (a client set): the blocks that hold its transactions, found through
BigchainDB's secondary indexes with the client's own credentials, and every vote on them.

A client set is a directory: the blocks and votes as a `rethinkdb dump` archive (so that the restore module
loads it and chain_check proves it came from the federation), and client-set.json, written last, which says
what was asked and found. Reading the cluster is in the first half of this file, writing the set in the second.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
import time

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.files import fsync_dir, fsync_file, write_json_atomic
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.rethinkdb import RAW_FORMATS
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.set_format import format_time, utc_now
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.streams import HashingWriter

RECORD = 'client-set.json'
ARCHIVE = 'rethinkdb_dump.tar.gz'
FORMAT = 1
KIND = 'bigchaindb-client-set'
BLOCKS = 'bigchain'
VOTES = 'votes'


class ClientSetError(Exception):
    """A client set cannot be made or read; the message says what to fix."""


# --- what the cluster holds for a client ------------------------------------------------------------------

def _run(query, connection) -> list:
    return list(query.run(connection, **RAW_FORMATS))


def blocks_holding(r, connection, db: str, transaction_ids: list) -> tuple[dict, dict]:
    """(blocks by id, block ids by transaction id) for the blocks that hold the transactions (index
    transaction_id). A transaction BigchainDB put in a block voted invalid, then in another, is in both."""
    blocks: dict = {}
    found: dict = dict((transaction_id, []) for transaction_id in transaction_ids)
    if not transaction_ids:
        return blocks, found
    for block in _run(r.db(db).table(BLOCKS).get_all(*transaction_ids, index='transaction_id'), connection):
        blocks[block['id']] = block
        for transaction in block['block']['transactions']:
            if transaction['id'] in found and block['id'] not in found[transaction['id']]:
                found[transaction['id']].append(block['id'])
    return blocks, dict((transaction_id, sorted(ids)) for transaction_id, ids in found.items())


def _outputs_to(block: dict, public_key: str) -> list:
    """[transaction id, output index] of each output of the block that names public_key among its owners."""
    return [[transaction['id'], index] for transaction in block['block']['transactions']
            for index, output in enumerate(transaction['outputs']) if public_key in output['public_keys']]


def blocks_of_keys(r, connection, db: str, public_keys: list) -> tuple[dict, dict]:
    """(blocks by id, per key the ids of the blocks with an output to it and of those that spend such an
    output) (indexes outputs and inputs): everything the key received and everything it gave away."""
    blocks: dict = {}
    found: dict = {}
    for public_key in public_keys:
        received = _run(r.db(db).table(BLOCKS).get_all(public_key, index='outputs'), connection)
        outputs = [pair for block in received for pair in _outputs_to(block, public_key)]
        spent = _run(r.db(db).table(BLOCKS).get_all(*outputs, index='inputs'), connection) if outputs else []
        for block in received + spent:
            blocks[block['id']] = block
        found[public_key] = dict(received_in=sorted(set(block['id'] for block in received)),
                                 spent_in=sorted(set(block['id'] for block in spent)))
    return blocks, found


def votes_on(r, connection, db: str, block_ids: list) -> list:
    """Every vote on the blocks (index block_and_voter, whose keys start with the voted block's id)."""
    votes = []
    for block_id in sorted(block_ids):
        votes += _run(r.db(db).table(VOTES).between([block_id, r.minval], [block_id, r.maxval], index='block_and_voter'), connection)
    return sorted(votes, key=lambda vote: vote['id'])


def table_info(r, connection, db: str, table: str) -> dict:
    """A table's description as rethinkdb dump writes it in its .info: info() with every index's status and function."""
    info = r.db(db).table(table).info().run(connection, **RAW_FORMATS)
    info['indexes'] = _run(r.db(db).table(table).index_status(), connection)
    return info


def collect(r, connection, db: str, transaction_ids: list, public_keys: list) -> dict:
    """What the cluster holds for the client: blocks, votes, table descriptions, and what was found for each ask."""
    blocks, by_transaction = blocks_holding(r, connection, db, transaction_ids)
    key_blocks, by_key = blocks_of_keys(r, connection, db, public_keys)
    blocks.update(key_blocks)
    votes = votes_on(r, connection, db, list(blocks))
    return dict(
        blocks=[blocks[block_id] for block_id in sorted(blocks)],
        votes=votes,
        infos=dict((table, table_info(r, connection, db, table)) for table in (BLOCKS, VOTES)),
        found=dict(transaction_ids=by_transaction, public_keys=by_key),
        not_found=dict(transaction_ids=[transaction_id for transaction_id, ids in by_transaction.items() if not ids],
                       public_keys=[key for key, entry in by_key.items() if not entry['received_in']]),
    )


# --- writing a client set ----------------------------------------------------------------------------------

def table_text(documents: list) -> bytes:
    """A table's .json as rethinkdb dump writes it: a JSON array, one document a line."""
    if not documents:
        return b'[\n]\n'
    lines = [json.dumps(document, ensure_ascii=False, sort_keys=True) for document in documents]
    return ('[\n' + ',\n'.join(lines) + '\n]\n').encode('utf-8')


def _add(archive: tarfile.TarFile, name: str, content: bytes | None, moment: float) -> None:
    member = tarfile.TarInfo(name)
    member.mtime = int(moment)
    if content is None:
        member.type = tarfile.DIRTYPE
        member.mode = 0o755
        archive.addfile(member)
        return
    member.size = len(content)
    member.mode = 0o644
    archive.addfile(member, io.BytesIO(content))


def write_archive(path: str, top: str, db: str, tables: dict) -> dict:
    """A dump-layout tar.gz of the tables ({name: (info, documents)}) at path, fsynced; its sha256 and size."""
    moment = time.time()
    with open(path, 'xb') as stream:
        hashing = HashingWriter(stream)
        with gzip.GzipFile(filename='', mode='wb', fileobj=hashing, mtime=int(moment)) as zipped:
            with tarfile.open(fileobj=zipped, mode='w|', format=tarfile.PAX_FORMAT) as archive:
                _add(archive, top, None, moment)
                _add(archive, '%s/%s' % (top, db), None, moment)
                for table, (info, documents) in sorted(tables.items()):
                    _add(archive, '%s/%s/%s.info' % (top, db, table), (json.dumps(info, sort_keys=True) + '\n').encode('utf-8'), moment)
                    _add(archive, '%s/%s/%s.json' % (top, db, table), table_text(documents), moment)
    fsync_file(path)
    return dict(path=ARCHIVE, bytes=hashing.bytes, sha256=hashing.hexdigest())


def client_set_id(moment) -> str:
    """The set's id, which names its archive's top directory: the UTC time it was made."""
    return 'client_%s' % moment.strftime('%Y%m%dT%H%M%SZ')


def write_client_set(dest: str, db: str, asked: dict, collected: dict, source: dict) -> dict:
    """Write the client set into dest, which must not exist: everything into <dest>.writing, the record last,
    then one rename, so that a set is complete or absent. Return its record."""
    if os.path.lexists(dest):
        raise ClientSetError('%s already exists: give another dest, or remove it.' % dest)
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        raise ClientSetError('%s, the directory to hold dest, does not exist.' % parent)
    writing = dest.rstrip('/') + '.writing'
    if os.path.lexists(writing):
        shutil.rmtree(writing)
    os.mkdir(writing, 0o700)
    try:
        moment = utc_now()
        tables = {BLOCKS: (collected['infos'][BLOCKS], collected['blocks']), VOTES: (collected['infos'][VOTES], collected['votes'])}
        archive = write_archive(os.path.join(writing, ARCHIVE), client_set_id(moment), db, tables)
        record = dict(format=FORMAT, kind=KIND, set_id=client_set_id(moment), created_at=format_time(moment), db=db, source=source,
                      asked=asked, found=collected['found'], not_found=collected['not_found'],
                      blocks=[block['id'] for block in collected['blocks']],
                      tables=[dict(db=db, name=BLOCKS, documents=len(collected['blocks'])), dict(db=db, name=VOTES, documents=len(collected['votes']))],
                      archive=archive)
        write_json_atomic(os.path.join(writing, RECORD), record)
        os.rename(writing, dest)
    except BaseException:
        shutil.rmtree(writing, ignore_errors=True)
        raise
    fsync_dir(parent)
    return record
