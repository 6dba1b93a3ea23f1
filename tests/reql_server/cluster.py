"""The cluster mesh: connections between servers over their cluster ports, requests between them, and broadcasts.

Messages are JSON objects framed by a 4-byte big-endian length. A connection starts with both sides sending a
`hello` (server id, name, the addresses of the servers they know, their metadata and replica states), so a server
that joins one member learns and connects to all others. A server keeps trying the addresses it knows; it counts a
peer as connected while at least one connection to it is open.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import logging
import socket
import struct
import threading
import time

from . import errors
from .protocol import ErrorType

LOG = logging.getLogger('reql_server.cluster')
RECONNECT_SECONDS = 0.3
CONNECT_TIMEOUT = 1.0
CALL_TIMEOUT = 30.0


class PeerLost(Exception):
    """The connection to a peer closed while a request to it was in flight."""


class Connection:
    """One TCP connection to a peer; sends are serialised, replies are matched to requests by number."""

    def __init__(self, mesh: Mesh, sock: socket.socket, outgoing: bool):
        self.mesh = mesh
        self.sock = sock
        self.outgoing = outgoing
        self.peer_id: str | None = None
        self._send_lock = threading.Lock()
        self._pending: dict = {}
        self._numbers = itertools.count(1)
        self.closed = False

    def send(self, message: dict) -> None:
        """Send one message; a failure closes the connection."""
        payload = json.dumps(message, separators=(',', ':')).encode('utf-8')
        try:
            with self._send_lock:
                self.sock.sendall(struct.pack('>I', len(payload)) + payload)
        except OSError:
            self.close()
            raise PeerLost() from None

    def call(self, method: str, params: dict, timeout: float) -> concurrent.futures.Future:
        """Send a request; the future gets the reply or PeerLost."""
        number = next(self._numbers)
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._pending[number] = future
        if self.closed:
            self._pending.pop(number, None)
            future.set_exception(PeerLost())
            return future
        try:
            self.send({'t': 'call', 'n': number, 'm': method, 'p': params})
        except PeerLost as lost:
            self._pending.pop(number, None)
            if not future.done():
                future.set_exception(lost)
        return future

    def receive_loop(self) -> None:
        """Read messages until the connection closes, then tell the mesh."""
        try:
            with contextlib.suppress(OSError):
                while True:
                    header = self._read_exactly(4)
                    if header is None:
                        break
                    body = self._read_exactly(struct.unpack('>I', header)[0])
                    if body is None:
                        break
                    self._dispatch(json.loads(body.decode('utf-8')))
        finally:
            self.close()

    def _read_exactly(self, size: int) -> bytes | None:
        chunks, remaining = [], size
        while remaining:
            chunk = self.sock.recv(min(remaining, 1 << 20))
            if not chunk:
                return None
            chunks.append(chunk)
            remaining -= len(chunk)
        return b''.join(chunks)

    def _dispatch(self, message: dict) -> None:
        kind = message.get('t')
        if kind == 'reply':
            future = self._pending.pop(message['n'], None)
            if future is not None and not future.done():
                if 'e' in message:
                    message_text, error_type = message['e']
                    future.set_exception(errors.ReqlError(message_text, ErrorType(error_type)))
                else:
                    future.set_result(message.get('r'))
        elif kind == 'call':
            self.mesh.workers.submit(self._answer, message)
        elif kind == 'hello':
            self.mesh.on_hello(self, message)
        else:
            self.mesh.on_message(self, message)

    def _answer(self, message: dict) -> None:
        try:
            result = self.mesh.handle_call(message['m'], message['p'], self.peer_id)
            reply = {'t': 'reply', 'n': message['n'], 'r': result}
        except errors.ReqlError as error:
            reply = {'t': 'reply', 'n': message['n'], 'e': [error.message, int(error.error_type)]}
        except Exception as error:  # pylint: disable=broad-except
            LOG.exception('request %s from %s failed', message.get('m'), self.peer_id)
            reply = {'t': 'reply', 'n': message['n'], 'e': ['Internal error: %s' % error, int(ErrorType.INTERNAL)]}
        with contextlib.suppress(PeerLost):
            self.send(reply)

    def close(self) -> None:
        """Close the socket, fail the requests in flight, and let the mesh forget the connection."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(PeerLost())
        self._pending.clear()
        self.mesh.on_closed(self)


class Mesh:
    """All connections of one server to the others of its cluster."""

    def __init__(self, node, bind_hosts: list, port: int, join: list):
        self.node = node
        self.bind_hosts = bind_hosts
        self.port = port
        self._join = list(join)
        self._lock = threading.RLock()
        self._connections: dict = {}
        self._addresses: dict = {}
        self._connecting: set = set()
        self._listeners: list = []
        self._stopping = threading.Event()
        self.workers = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix='cluster-call')
        self.connected_at: dict = {}

    # -- lifecycle

    def listen(self) -> None:
        """Bind the cluster port on every bind address (raises OSError if taken)."""
        for host in self.bind_hosts:
            listener = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, self.port))
            listener.listen(64)
            if self.port == 0:
                self.port = listener.getsockname()[1]
            self._listeners.append(listener)

    def start(self) -> None:
        """Accept peers and keep connecting to the known ones, in background threads."""
        for listener in self._listeners:
            threading.Thread(target=self._accept_loop, args=(listener,), name='cluster-accept', daemon=True).start()
        threading.Thread(target=self._connect_loop, name='cluster-connect', daemon=True).start()

    def stop(self) -> None:
        """Close every connection and listener."""
        self._stopping.set()
        for listener in self._listeners:
            listener.close()
        with self._lock:
            connections = [connection for group in self._connections.values() for connection in group]
        for connection in connections:
            connection.close()
        self.workers.shutdown(wait=False, cancel_futures=True)

    # -- connections

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                sock, _address = listener.accept()
            except OSError:
                return
            self._start_connection(sock, outgoing=False)

    def _connect_loop(self) -> None:
        while not self._stopping.wait(RECONNECT_SECONDS):
            with self._lock:
                targets = [(host, port) for peer_id, (host, port) in self._addresses.items()
                           if not self._connections.get(peer_id)]
                targets += [address for address in self._join if address not in self._addresses.values()]
                targets = [address for address in targets if address not in self._connecting]
                self._connecting.update(targets)
            for address in targets:
                threading.Thread(target=self._connect, args=(address,), name='cluster-dial', daemon=True).start()

    def _connect(self, address: tuple) -> None:
        try:
            with contextlib.suppress(OSError):
                sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
                sock.settimeout(None)
                self._start_connection(sock, outgoing=True)
        finally:
            with self._lock:
                self._connecting.discard(address)

    def _start_connection(self, sock: socket.socket, outgoing: bool) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection = Connection(self, sock, outgoing)
        try:
            connection.send(self.node.hello_message())
        except PeerLost:
            return
        threading.Thread(target=connection.receive_loop, name='cluster-peer', daemon=True).start()

    def on_hello(self, connection: Connection, message: dict) -> None:
        """A peer introduced itself: remember it and its addresses, then let the node merge its state."""
        peer_id = message['id']
        if peer_id == self.node.server_id:
            connection.close()
            return
        connection.peer_id = peer_id
        with self._lock:
            newly_connected = not self._connections.get(peer_id)
            self._connections.setdefault(peer_id, []).append(connection)
            for known_id, host, port in message.get('peers', []):
                if known_id != self.node.server_id:
                    self._addresses.setdefault(known_id, (host, port))
            self._addresses[peer_id] = (message['host'], message['port'])
            if newly_connected:
                self.connected_at[peer_id] = time.time()
        self.node.on_peer_hello(peer_id, message, newly_connected)

    def on_message(self, connection: Connection, message: dict) -> None:
        """A broadcast from a peer."""
        if connection.peer_id is not None:
            self.node.on_peer_message(connection.peer_id, message)

    def on_closed(self, connection: Connection) -> None:
        """A connection closed; the peer is gone when it was the last one."""
        peer_id = connection.peer_id
        if peer_id is None:
            return
        with self._lock:
            group = self._connections.get(peer_id, [])
            if connection in group:
                group.remove(connection)
            gone = not group
            if gone:
                self._connections.pop(peer_id, None)
                self.connected_at.pop(peer_id, None)
        if gone and not self._stopping.is_set():
            self.node.on_peer_lost(peer_id)

    # -- queries

    def connected(self) -> set:
        """Ids of the peers with an open connection."""
        with self._lock:
            return {peer_id for peer_id, group in self._connections.items() if group}

    def known_addresses(self) -> list:
        """[[id, host, port]] of every peer this server knows how to reach."""
        with self._lock:
            return [[peer_id, host, port] for peer_id, (host, port) in self._addresses.items()]

    def _connection(self, peer_id: str) -> Connection:
        with self._lock:
            group = self._connections.get(peer_id)
            if not group:
                raise PeerLost()
            return group[0]

    def call(self, peer_id: str, method: str, params: dict, timeout: float = CALL_TIMEOUT):
        """Run `method` on a peer and return its result; raises PeerLost or the peer's ReqlError."""
        future = self._connection(peer_id).call(method, params, timeout)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise PeerLost() from None

    def call_async(self, peer_id: str, method: str, params: dict) -> concurrent.futures.Future:
        """Start a request to a peer; the future holds the result."""
        try:
            return self._connection(peer_id).call(method, params, CALL_TIMEOUT)
        except PeerLost as lost:
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.set_exception(lost)
            return future

    def send(self, peer_id: str, message: dict) -> None:
        """Send a one-way message to a peer, if connected."""
        with contextlib.suppress(PeerLost):
            self._connection(peer_id).send(message)

    def broadcast(self, message: dict) -> None:
        """Send a one-way message to every connected peer."""
        for peer_id in self.connected():
            self.send(peer_id, message)

    def handle_call(self, method: str, params: dict, peer_id: str | None):
        """Dispatch a request from a peer to the node."""
        return self.node.handle_peer_call(method, params, peer_id)
