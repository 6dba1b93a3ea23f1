# Copyright: bigchaindb.rethinkdb contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The relay carries bytes both ways, and stopping it is an outage: new connections refused, open ones reset;
started again, it serves on the same address."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.bigchaindb.rethinkdb.tests.harness.cluster import free_ports
from ansible_collections.bigchaindb.rethinkdb.tests.harness.netrelay import Relay


@pytest.fixture(name='echo_port')
def fixture_echo_port():
    """A loopback server that sends back, upper-cased, what each connection sends."""
    listener = socket.create_server(('127.0.0.1', 0))

    def serve(connection: socket.socket) -> None:
        with connection:
            try:
                while chunk := connection.recv(65536):
                    connection.sendall(chunk.upper())
            except ConnectionResetError:
                return  # the relay was stopped

    def accept() -> None:
        while True:
            try:
                connection, _address = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture(name='relay')
def fixture_relay(echo_port, tmp_path):
    relay = Relay('127.0.0.1', free_ports(1)[0], '127.0.0.1', echo_port, tmp_path / 'relay.log')
    relay.start()
    yield relay
    relay.stop()


def exchange(connection: socket.socket, payload: bytes) -> bytes:
    connection.sendall(payload)
    received = b''
    while len(received) < len(payload):
        chunk = connection.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_bytes_go_through_both_ways(relay):
    payload = bytes(range(97, 123)) * 40000
    with socket.create_connection((relay.listen_host, relay.listen_port), timeout=10) as connection:
        assert exchange(connection, payload) == payload.upper()
    assert relay.url == 'http://127.0.0.1:%d' % relay.listen_port


def test_a_stopped_relay_resets_open_connections_and_refuses_new_ones_until_started(relay):
    connection = socket.create_connection((relay.listen_host, relay.listen_port), timeout=10)
    assert exchange(connection, b'before') == b'BEFORE'
    relay.stop()
    assert not relay.running()
    with pytest.raises(ConnectionError):
        exchange(connection, b'during')
    connection.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((relay.listen_host, relay.listen_port), timeout=10)
    relay.start()
    with socket.create_connection((relay.listen_host, relay.listen_port), timeout=10) as again:
        assert exchange(again, b'after') == b'AFTER'
