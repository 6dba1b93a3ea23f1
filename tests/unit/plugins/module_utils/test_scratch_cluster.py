"""Scratch clusters: where each server keeps its files, the argv that starts it on its own ports, the record of a
new cluster, and the listing of what rehearsals left."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.module_utils.scratch_cluster import (
    Scratch, ScratchError, create, data_state, free_ports, listing, server_argv)

PORTS = {'node1': dict(driver_port=41001, cluster_port=41002), 'node2': dict(driver_port=41003, cluster_port=41004)}
RUN = dict(host='controller', boot_id='b', pid=4242, start_ticks=17)


def test_a_fresh_server_is_named_and_joins_the_others_on_their_cluster_ports(tmp_path):
    scratch = Scratch(str(tmp_path), 'r1')

    argv = server_argv(['/usr/bin/rethinkdb'], scratch, 'node1', PORTS, '127.0.0.1', 256, fresh=True)

    base = str(tmp_path / 'r1' / 'node1')
    assert argv == ['/usr/bin/rethinkdb', '--directory', base + '/data', '--bind', '127.0.0.1', '--driver-port', '41001',
                    '--cluster-port', '41002', '--no-http-admin', '--no-update-check', '--pid-file', base + '/server.pid',
                    '--log-file', base + '/server.log', '--daemon', '--server-name', 'node1', '--cache-size', '256',
                    '--join', '127.0.0.1:41004']


def test_a_restored_server_keeps_the_name_its_data_holds(tmp_path):
    argv = server_argv(['python3', 'server'], Scratch(str(tmp_path), 'r1'), 'node2', PORTS, '::1', None, fresh=False)

    assert '--server-name' not in argv and '--cache-size' not in argv
    assert argv[:2] == ['python3', 'server'] and argv[-2:] == ['--join', '[::1]:41002']


@pytest.mark.parametrize('name', ['', '../up', 'a/b', '-flag', '.hidden'])
def test_names_that_are_not_plain_directory_names_are_refused(tmp_path, name):
    with pytest.raises(ScratchError, match='is not a valid name'):
        Scratch(str(tmp_path), name)
    with pytest.raises(ScratchError, match='is not a valid name'):
        Scratch(str(tmp_path), 'r1').server_dir(name)


def test_create_makes_private_directories_and_a_record_once(tmp_path):
    scratch = Scratch(str(tmp_path / 'rehearsals'), 'r1')
    before = time.time()

    record = create(scratch, ['node1', 'node2'], RUN, 60)

    assert json.loads(Path(scratch.run_file).read_text()) == record
    assert (record['name'], record['servers'], record['run'], record['keeper'], record['ports']) == ('r1', ['node1', 'node2'], RUN, None, {})
    assert before - 1 <= record['created_at'] <= time.time() and record['expires_at'] == pytest.approx(record['created_at'] + 60, abs=0.01)
    assert [oct(path.stat().st_mode & 0o777) for path in (tmp_path / 'rehearsals' / 'r1', tmp_path / 'rehearsals' / 'r1' / 'node2')] == ['0o700'] * 2
    assert create(scratch, ['node2', 'node1'], RUN, 999) == record
    with pytest.raises(ScratchError, match='exists with servers node1, node2, not node3'):
        create(scratch, ['node3'], RUN, 60)


def test_data_directories_are_all_restored_or_all_fresh(tmp_path):
    scratch = Scratch(str(tmp_path), 'r1')
    create(scratch, ['node1', 'node2'], RUN, 60)
    assert data_state(scratch, ['node1', 'node2']) is False
    Path(scratch.data_dir('node1')).mkdir()
    (Path(scratch.data_dir('node1')) / 'metadata').write_text('x')
    with pytest.raises(ScratchError, match='Servers node1 have a data directory and node2 none'):
        data_state(scratch, ['node1', 'node2'])
    Path(scratch.data_dir('node2')).mkdir()
    (Path(scratch.data_dir('node2')) / 'metadata').write_text('x')
    assert data_state(scratch, ['node1', 'node2']) is True


def test_listing_names_each_scratch_cluster_with_its_run_and_whether_it_expired(tmp_path):
    directory = tmp_path / 'rehearsals'
    create(Scratch(str(directory), 'r1'), ['node1'], RUN, 3600)
    create(Scratch(str(directory), 'r2'), ['node1'], RUN, 1)
    (directory / 'r3').mkdir()
    (directory / 'stray-file').write_text('')
    time.sleep(1.1)

    clusters = listing(str(directory))

    assert [(cluster['name'], cluster['recorded'], cluster['expired'], cluster['run'], cluster['running'], cluster['keeper_running'])
            for cluster in clusters] == [('r1', True, False, RUN, [], False), ('r2', True, True, RUN, [], False), ('r3', False, True, None, [], False)]
    assert listing(str(tmp_path / 'nowhere')) == []


def test_free_ports_are_distinct():
    ports = free_ports(6, '127.0.0.1')
    assert len(set(ports)) == 6 and all(port > 0 for port in ports)
