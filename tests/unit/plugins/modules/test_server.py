"""The server module through main(): a systemd unit (a stand-in systemctl on PATH) or the inventory's
commands (real processes), check mode and failures."""

from __future__ import annotations

import sys

from ansible_collections.bigchaindb.rethinkdb.plugins.modules import server
from ansible_collections.bigchaindb.rethinkdb.tests.unit.plugins.fake_reql import run_module

UNIT = 'rethinkdb@default'


def test_a_stopped_unit_is_started_and_then_left_alone(systemctl, capsys):
    started = run_module(server.main, dict(service=UNIT, state='started'), capsys)
    again = run_module(server.main, dict(service=UNIT, state='started'), capsys)

    assert (started['changed'], started['cmd']) == (True, ['systemctl', 'start', UNIT])
    assert (again['changed'], again['cmd']) == (False, None)
    assert systemctl.active() == [UNIT]
    assert systemctl.calls() == ['is-active --quiet %s' % UNIT, 'start %s' % UNIT, 'is-active --quiet %s' % UNIT]


def test_a_running_unit_is_stopped(systemctl, capsys):
    systemctl.set_active(UNIT, 'other')

    stopped = run_module(server.main, dict(service=UNIT, state='stopped'), capsys)

    assert (stopped['changed'], stopped['cmd']) == (True, ['systemctl', 'stop', UNIT])
    assert systemctl.active() == ['other']


def test_check_mode_asks_the_unit_and_changes_nothing(systemctl, capsys):
    systemctl.set_active(UNIT)

    stop = run_module(server.main, dict(service=UNIT, state='stopped', _ansible_check_mode=True), capsys)
    start = run_module(server.main, dict(service=UNIT, state='started', _ansible_check_mode=True), capsys)

    assert (stop['changed'], stop['cmd']) == (True, ['systemctl', 'stop', UNIT])
    assert (start['changed'], start['cmd']) == (False, None)
    assert systemctl.active() == [UNIT]
    assert systemctl.calls() == ['is-active --quiet %s' % UNIT] * 2


def test_commands_run_every_time(tmp_path, capsys):
    log = tmp_path / 'server.log'
    control = [sys.executable, '-c', 'import sys; open(sys.argv[1], "a").write(sys.argv[2] + "\\n")', str(log)]
    args = dict(stop_command=control + ['stop'], start_command=control + ['start'])

    stopped = run_module(server.main, dict(args, state='stopped'), capsys)
    again = run_module(server.main, dict(args, state='stopped'), capsys)
    checked = run_module(server.main, dict(args, state='started', _ansible_check_mode=True), capsys)
    started = run_module(server.main, dict(args, state='started'), capsys)

    assert (stopped['changed'], again['changed'], checked['changed'], started['changed']) == (True, True, True, True)
    assert stopped['cmd'] == control + ['stop'] and checked['cmd'] == control + ['start']
    assert log.read_text().split() == ['stop', 'stop', 'start']


def test_a_failing_start_is_one_line_with_what_ran(systemctl, capsys):
    result = run_module(server.main, dict(service='broken@default', state='started'), capsys)

    assert result['failed'] is True
    assert result['msg'] == ('Cannot start the server: systemctl exited with 1: Job for broken@default failed because the control '
                             'process exited with error code.')
    assert result['rc'] == 1 and result['argv'][1:] == ['start', 'broken@default'] and result['argv'][0].endswith('/systemctl')


def test_how_to_stop_and_start_is_required_and_one_way_only(capsys):
    neither = run_module(server.main, dict(state='started', stop_command=['true']), capsys)
    both = run_module(server.main, dict(state='started', service=UNIT, stop_command=['true'], start_command=['true']), capsys)

    assert neither['msg'] == ('Say how to stop and start the server: service (a systemd unit), or stop_command and start_command '
                              '(argument lists).')
    assert both['failed'] is True and both['msg'].startswith('parameters are mutually exclusive: service|stop_command')
