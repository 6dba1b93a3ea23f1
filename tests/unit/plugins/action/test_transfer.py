"""The transfer action's own SSH options: a part crosses without compression, on a connection of its own."""

from __future__ import annotations

import pytest

from ansible_collections.bigchaindb.rethinkdb.plugins.action.transfer import uncompressed_ssh_args


@pytest.mark.parametrize('ssh_args, expected', [
    ('-C -o ControlMaster=auto -o ControlPersist=60s', ''),
    ('-C -o ControlMaster=auto -o ControlPersist=60s -o ControlPath=/tmp/cp-%h', ''),
    ('-o Compression=yes -oControlMaster=auto -o "ControlPersist 60s" -o ServerAliveInterval=5', '-o ServerAliveInterval=5'),
    ('-4 -o Ciphers=aes128-gcm@openssh.com -o "ProxyCommand=ssh -C -W %h:%p jump"',
     "-4 -o Ciphers=aes128-gcm@openssh.com -o 'ProxyCommand=ssh -C -W %h:%p jump'"),
    ('', ''),
])
def test_the_part_crosses_uncompressed_on_a_connection_of_its_own(ssh_args, expected):
    assert uncompressed_ssh_args(ssh_args) == expected


def test_ssh_args_that_cannot_be_split_are_an_error():
    with pytest.raises(ValueError, match='No closing quotation'):
        uncompressed_ssh_args('-o "ProxyCommand=ssh jump')
