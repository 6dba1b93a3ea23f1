"""Databases and tables: create, list, drop, and the errors for names that exist or do not."""

from __future__ import annotations

import pytest
from rethinkdb.errors import ReqlOpFailedError, ReqlQueryLogicError


def test_db_create_list_drop(r, conn):
    created = r.db_create('conformance_dbs').run(conn)
    assert created['dbs_created'] == 1
    assert created['config_changes'][0]['old_val'] is None
    assert created['config_changes'][0]['new_val']['name'] == 'conformance_dbs'
    assert 'conformance_dbs' in r.db_list().run(conn)
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db_create('conformance_dbs').run(conn)
    assert raised.value.message == 'Database `conformance_dbs` already exists.'
    r.db('conformance_dbs').table_create('one').run(conn)
    dropped = r.db_drop('conformance_dbs').run(conn)
    assert (dropped['dbs_dropped'], dropped['tables_dropped']) == (1, 1)
    assert dropped['config_changes'][0]['new_val'] is None
    assert 'conformance_dbs' not in r.db_list().run(conn)


def test_missing_database(r, conn):
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db('conformance_missing').table_list().run(conn)
    assert raised.value.message == 'Database `conformance_missing` does not exist.'


def test_table_create_list_drop(r, conn, db):
    created = r.db(db).table_create('blocks', primary_key='key').run(conn)
    assert created['tables_created'] == 1
    config = created['config_changes'][0]['new_val']
    assert (config['name'], config['db'], config['primary_key']) == ('blocks', db, 'key')
    assert r.db(db).table_list().run(conn) == ['blocks']
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db(db).table_create('blocks').run(conn)
    assert raised.value.message == 'Table `%s.blocks` already exists.' % db
    dropped = r.db(db).table_drop('blocks').run(conn)
    assert dropped['tables_dropped'] == 1
    assert dropped['config_changes'][0]['old_val']['id'] == config['id']
    assert r.db(db).table_list().run(conn) == []


def test_missing_table(r, conn, db):
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db(db).table('absent').run(conn)
    assert raised.value.message == 'Table `%s.absent` does not exist.' % db
    with pytest.raises(ReqlOpFailedError) as raised:
        r.db(db).table_drop('absent').run(conn)
    assert raised.value.message == 'Table `%s.absent` does not exist.' % db


def test_invalid_names(r, conn):
    with pytest.raises(ReqlQueryLogicError) as raised:
        r.db_create('bad name').run(conn)
    assert raised.value.message == 'Database name `bad name` invalid (Use A-Z, a-z, 0-9, _ and - only).'


def test_table_visible_from_every_server(r, cluster, conn, db):
    r.db(db).table_create('shared').run(conn)
    for node in cluster.nodes:
        with cluster.connect(node.name) as connection:
            assert r.db(db).table_list().run(connection) == ['shared']
