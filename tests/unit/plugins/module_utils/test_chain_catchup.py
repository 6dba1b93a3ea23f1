"""The catch-up that closes a gap, against a stand-in for the driver: only keys are read in full, only the documents the
chain lacks are fetched, documents it holds that are gone raise alarms, a full segment is sealed on the way; and
the index of what the chain holds."""

from __future__ import annotations

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils import chain_source
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_index import HeldIndex
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.chain_source import catch_up
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.repository_local import LocalRepository
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.chain_sets import make_base, open_writer, votes
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import FakeR, names

VOTES = {'db': 'bigchain', 'name': 'votes', 'primary_key': 'id'}


class Table:
    """What the stand-in cluster's votes table holds, and the queries it answers."""

    def __init__(self, documents):
        self.documents = dict((document['id'], document) for document in documents)
        self.fetched = []

    def answer(self, chain):
        steps = names(chain)
        if steps == ('db', 'table', 'get_field'):
            return iter(sorted(self.documents))
        if steps == ('db', 'table', 'get_all'):
            keys = chain[2][1]
            self.fetched.append(list(keys))
            return [self.documents[key] for key in keys if key in self.documents]
        raise AssertionError('unexpected query %s' % (steps,))


@pytest.fixture(name='writer')
def fixture_writer(tmp_path):
    repository = LocalRepository(str(tmp_path / 'backups'))
    make_base(repository, {'bigchain.votes': votes(range(5)), 'bigchain.bigchain': []})
    return open_writer(repository, tmp_path / 'index.sqlite', seal_documents=4)


def test_only_what_the_chain_lacks_is_fetched_and_what_is_gone_raises_alarms(writer):
    writer.add_document('bigchain.votes', 'vote-0005', votes([5])[0], 'feed', 1.0)
    table = Table([document for document in votes(range(12)) if document['id'] not in ('vote-0001', 'vote-0003')])
    fake = FakeR(table.answer)
    sealed = []

    result = catch_up(fake, None, VOTES, writer, lambda: sealed.append(writer.seal()))
    sealed.append(writer.seal())

    assert (result.keys, result.found, result.missing) == (10, 6, 2)
    assert table.fetched == [['vote-0006', 'vote-0007', 'vote-0008', 'vote-0009', 'vote-0010', 'vote-0011']]
    options = [options for chain, options in fake.queries if names(chain) == ('db', 'table', 'get_field')]
    assert options == [dict(chain_source.RAW, max_batch_rows=chain_source.KEY_BATCH)]
    records = [record['tables']['bigchain.votes'] for record in sealed if record]
    assert sum(counts['insert'] for counts in records) == 7 and sum(counts['missing'] for counts in records) == 2
    assert len(records) == 3 and all(sum(counts.values()) <= 4 for counts in records)


def test_a_second_catch_up_finds_nothing_new(writer):
    table = Table(votes(range(8)))
    catch_up(FakeR(table.answer), None, VOTES, writer, writer.seal)
    writer.seal()
    table.fetched.clear()

    again = catch_up(FakeR(table.answer), None, VOTES, writer, writer.seal)

    assert (again.found, again.missing, table.fetched) == (0, 0, [])


def test_the_index_holds_what_was_committed_and_what_is_gone(tmp_path):
    index = HeldIndex(str(tmp_path / 'index.sqlite'))
    index.reset('20261124T163000Z-3f9a', '20261124T120000Z-dump-77aa', 'a' * 64)
    assert index.add_base([('bigchain.votes', 'v1', {'id': 'v1'}), ('bigchain.votes', 'v2', {'id': 'v2'})]) == 2
    index.absorb(1, 'b' * 64, [('bigchain.votes', '"v3"', b'0' * 16)], [('bigchain.votes', '"v1"')], [])
    index.begin_scan()
    index.saw(['"v3"'])

    assert index.meta() == {'chain_id': '20261124T163000Z-3f9a', 'base_set_id': '20261124T120000Z-dump-77aa', 'base_done': '1',
                            'seq': '1', 'sha256': 'b' * 64}
    assert sorted(index.lookup('bigchain.votes', ['"v1"', '"v3"', '"v9"'])) == ['"v1"', '"v3"']
    assert list(index.unseen('bigchain.votes')) == ['"v2"']
    index.close()
    assert oct((tmp_path / 'index.sqlite').stat().st_mode & 0o777) == '0o600'
