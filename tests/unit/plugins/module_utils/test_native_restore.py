"""native_restore without a server: how a table's document lines become batches, in any layout of the archive."""

from __future__ import annotations

import io
import json

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.dump_archive import DumpArchiveError, document_lines
from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.native_restore import batches

DOCUMENTS = [{'id': 'k%03d' % number, 'text': 'x' * (number * 7 % 50), 'list': [number, {'nested': '] , ['}]} for number in range(120)]


def test_batches_hold_every_line_once_in_order_and_stay_near_their_size():
    lines = [json.dumps(document).encode() for document in DOCUMENTS]

    made = list(batches('db.table', iter(lines), batch_bytes=1000))

    assert [line for batch in made for line in batch.lines] == lines
    assert all(batch.label == 'db.table' for batch in made)
    assert all(sum(len(line) + 1 for line in batch.lines[:-1]) < 1000 for batch in made)
    assert len(made) > 5


@pytest.mark.parametrize('data', [
    ('[\n' + ',\n'.join(json.dumps(document) for document in DOCUMENTS) + '\n]\n').encode(),
    json.dumps(DOCUMENTS, indent=2).encode(),
    json.dumps(DOCUMENTS).encode(),
], ids=['tool-layout', 'pretty', 'one-line'])
def test_document_lines_are_the_documents_in_any_layout(data):
    lines = list(document_lines(io.BytesIO(data), 'db/table.json'))

    assert [json.loads(line) for line in lines] == DOCUMENTS
    assert all(b'\n' not in line for line in lines)


@pytest.mark.parametrize('data', [b'[\n{"id": 1},\n{"id": 2},\n]\n', b'[\n{"id": 1}\n{"id": 2}\n]\n', b'[\n{"id": 1}\n'],
                         ids=['trailing-comma', 'missing-comma', 'unclosed'])
def test_a_damaged_tool_layout_is_refused(data):
    with pytest.raises(DumpArchiveError, match='db/table.json'):
        list(document_lines(io.BytesIO(data), 'db/table.json'))
