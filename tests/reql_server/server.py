"""The running server process: the node, the driver port listener, the query thread pool, and a clean stop."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import socket
import threading
import time

from . import ops_admin, ops_datum, ops_sequence, ops_table  # noqa: F401  pylint: disable=unused-import
from .node import Node, Options
from .wire import ClientConnection

LOG = logging.getLogger('reql_server')
QUERY_THREADS = 128
DRAIN_SECONDS = 15.0


class QueryPool:
    """Runs queries on threads, and lets a stopping server wait for the ones in flight."""

    def __init__(self, size: int):
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=size, thread_name_prefix='query')
        self._running = 0
        self._idle = threading.Condition()

    def submit(self, function, *args) -> None:
        """Run function(*args) on a query thread."""
        with self._idle:
            self._running += 1
        self._executor.submit(self._run, function, args)

    def _run(self, function, args) -> None:
        try:
            function(*args)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> None:
        """Take no more work; wait (up to `timeout`) until the running and queued queries are done."""
        self._executor.shutdown(wait=False)
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._running and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))


class Server:
    """One `rethinkdb serve` process."""

    def __init__(self, options: Options):
        self.options = options
        self.node = Node(options)
        self._listeners: list = []
        self._clients: set = set()
        self._clients_lock = threading.Lock()
        self._pool = QueryPool(QUERY_THREADS)
        self.stopped = threading.Event()

    def start(self) -> None:
        """Bind the ports (raising OSError if one is taken) and start serving."""
        hosts = ['0.0.0.0'] if 'all' in self.options.bind else self.options.bind
        for host in hosts:
            listener = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, self.options.driver_port))
            listener.listen(128)
            if self.options.driver_port == 0:
                self.options.driver_port = listener.getsockname()[1]
            self._listeners.append(listener)
        self.node.start()
        for listener in self._listeners:
            threading.Thread(target=self._accept_loop, args=(listener,), name='driver-accept', daemon=True).start()
        LOG.info('Listening for client driver connections on port %d', self.options.driver_port)
        LOG.info('Listening for intracluster connections on port %d', self.node.mesh.port)
        LOG.info('Server ready, "%s" %s', self.node.name, self.node.server_id)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self.stopped.is_set():
            try:
                sock, _address = listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve_client, args=(sock,), name='driver-client', daemon=True).start()

    def _serve_client(self, sock: socket.socket) -> None:
        with self._clients_lock:
            self._clients.add(sock)
        try:
            ClientConnection(self.node, sock, self._pool).serve()
        finally:
            with self._clients_lock:
                self._clients.discard(sock)

    def stop(self) -> None:
        """Stop accepting, drop clients, let running queries end, then close peers and files."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        self.node.stopping.set()
        LOG.info('Server got SIGTERM; shutting down...')
        for listener in self._listeners:
            listener.close()
        with self._clients_lock:
            clients = list(self._clients)
        for sock in clients:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._pool.drain(DRAIN_SECONDS)
        self.node.stop()
        LOG.info('Server shutdown complete.')
