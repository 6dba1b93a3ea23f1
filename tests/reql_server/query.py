"""Running the queries of one client connection: START, CONTINUE, STOP, NOREPLY_WAIT, SERVER_INFO, with cursors
that hand out streams in batches (bounded by `max_batch_rows`, a byte budget and a time budget)."""

from __future__ import annotations

import collections
import json
import logging
import threading
import time

from . import datum, errors, terms
from .evaluator import Context, evaluate, to_datum, value_type_name
from .feeds import Feed
from .protocol import ErrorType, QueryType, ResponseType
from .values import Database, Func, Ordering, Sequence, SingleSelection

LOG = logging.getLogger('reql_server.query')
BATCH_BYTES = 1024 * 1024
FIRST_BATCH_SCALEDOWN = 4
BATCH_SECONDS = 0.5
GLOBAL_OPTARGS = {'db', 'read_mode', 'durability', 'noreply', 'profile', 'array_limit', 'time_format',
                  'binary_format', 'group_format', 'use_outdated', 'identifier_format', 'min_batch_rows',
                  'max_batch_rows', 'max_batch_bytes', 'max_batch_seconds', 'first_batch_scaledown_factor',
                  'right_bound', 'left_bound', 'conflict', 'return_changes', 'changefeed_queue_size'}


def response(kind: ResponseType, data_json: str, error_type: ErrorType | None = None, frames=None,
             notes: bool | list = False) -> str:
    """A response body, fields in the real server's order (t, e, r, b, n); `notes` True for an empty list."""
    parts = ['"t":%d' % kind]
    if error_type is not None:
        parts.append('"e":%d' % error_type)
    parts.append('"r":' + data_json)
    if frames is not None:
        parts.append('"b":' + json.dumps(frames))
    if notes is not False:
        parts.append('"n":' + json.dumps(notes if isinstance(notes, list) else []))
    return '{' + ','.join(parts) + '}'


def error_response(error: errors.ReqlError) -> str:
    """The response for a failed query."""
    error_type = error.error_type if error.response_type == ResponseType.RUNTIME_ERROR else None
    if error.response_type == ResponseType.COMPILE_ERROR:
        error_type = None
    return response(error.response_type, json.dumps([error.message], ensure_ascii=False), error_type, error.frames)


class Cursor:
    """The unsent rest of a stream."""

    def __init__(self, sequence: Sequence, options: dict):
        raw = sequence.raw_batches()
        self._raw = raw is not None
        self._batches = raw if raw is not None else sequence.batches()
        self._pending: collections.deque = collections.deque()
        self._done = False
        self._first = True
        self._max_rows = options.get('max_batch_rows')
        self._max_bytes = options.get('max_batch_bytes') or BATCH_BYTES
        self.lock = threading.Lock()

    def next_response(self) -> str:
        """The next batch as a SUCCESS_PARTIAL or final SUCCESS_SEQUENCE response."""
        budget = self._max_bytes // (FIRST_BATCH_SCALEDOWN if self._first else 1)
        self._first = False
        deadline = time.time() + BATCH_SECONDS
        texts: list = []
        size = 0
        while not (self._max_rows and len(texts) >= self._max_rows) and size < budget:
            if texts and time.time() >= deadline:
                break
            if not self._pending and not self._refill():
                break
            value = self._pending.popleft()
            text = value if self._raw else datum.to_json(value)
            texts.append(text)
            size += len(text)
        if not self._pending and not self._done:
            self._refill()
        exhausted = self._done and not self._pending
        kind = ResponseType.SUCCESS_SEQUENCE if exhausted or not texts else ResponseType.SUCCESS_PARTIAL
        return response(kind, '[' + ','.join(texts) + ']', notes=True)

    def _refill(self) -> bool:
        while not self._done:
            try:
                batch = next(self._batches)
            except StopIteration:
                self._done = True
                return False
            if batch:
                self._pending.extend(batch)
                return True
        return False


class FeedCursor:
    """A changefeed's cursor: the first response right away, each CONTINUE waits for changes, STOP ends it."""

    def __init__(self, feed: Feed):
        self.feed = feed
        self._first = True
        self.lock = threading.Lock()

    def next_response(self) -> str:
        """SUCCESS_PARTIAL with the feed's notes; after STOP, an empty SUCCESS_SEQUENCE (as the real server)."""
        documents = self.feed.next_batch(wait=not self._first)
        self._first = False
        if documents is None:
            return response(ResponseType.SUCCESS_SEQUENCE, '[]', notes=True)
        return response(ResponseType.SUCCESS_PARTIAL, '[' + ','.join(datum.to_json(doc) for doc in documents) + ']',
                        notes=self.feed.notes())

    def stop(self) -> None:
        """End the feed (a CONTINUE waiting on it returns)."""
        self.feed.close()


class Session:
    """The queries of one authenticated client connection."""

    def __init__(self, node, user: str):
        self.node = node
        self.user = user
        self._cursors: dict = {}
        self._lock = threading.Lock()
        self._noreply_done = threading.Condition()
        self._noreply_running = 0

    def cursor(self, token: int):
        """The open cursor of a token, or None (taken when a CONTINUE arrives, so a STOP after it cannot overtake
        it while it waits for a query thread)."""
        with self._lock:
            return self._cursors.get(token)

    def handle(self, token: int, message, cursor=None) -> str | None:
        """The response to one client message (None for noreply queries); a CONTINUE may bring its cursor."""
        try:
            kind = message[0]
            if kind == QueryType.START:
                return self._start(token, message)
            if kind == QueryType.CONTINUE:
                return self._continue(token, cursor)
            if kind == QueryType.STOP:
                self._stop(token)
                return response(ResponseType.SUCCESS_SEQUENCE, '[]', notes=True)
            if kind == QueryType.NOREPLY_WAIT:
                self._wait_noreply()
                return response(ResponseType.WAIT_COMPLETE, '[]')
            if kind == QueryType.SERVER_INFO:
                info = {'id': self.node.server_id, 'name': self.node.name, 'proxy': False}
                return response(ResponseType.SERVER_INFO, '[' + datum.to_json(info) + ']')
            raise errors.client_error('Unexpected query type: %s.' % kind)
        except errors.ReqlError as error:
            return error_response(error)
        except (TypeError, IndexError, KeyError, ValueError) as error:
            LOG.exception('malformed query %r', message)
            return error_response(errors.client_error('Server could not parse query: %s' % error))

    def _start(self, token: int, message: list) -> str | None:
        with self._lock:
            if token in self._cursors:
                raise errors.client_error('ERROR: duplicate token %d' % token)
        raw_optargs = message[2] if len(message) > 2 else {}
        noreply = bool(raw_optargs.get('noreply', False)) if isinstance(raw_optargs, dict) else False
        if noreply:
            with self._noreply_done:
                self._noreply_running += 1
        try:
            result = self._run(token, message, raw_optargs)
        finally:
            if noreply:
                with self._noreply_done:
                    self._noreply_running -= 1
                    self._noreply_done.notify_all()
        return None if noreply else result

    def _run(self, token: int, message: list, raw_optargs: dict) -> str:
        try:
            global_optargs = {}
            for name, value in raw_optargs.items():
                if name not in GLOBAL_OPTARGS:
                    raise errors.compile_error('Unrecognized global optional argument `%s`.' % name)
                global_optargs[name] = terms.compile_term(value)
            root = terms.compile_term(message[1])
        except errors.ReqlError as error:
            if error.response_type == ResponseType.RUNTIME_ERROR:
                error.response_type = ResponseType.COMPILE_ERROR
            raise
        ctx = Context(self.node, global_optargs, self.user)
        value = evaluate(ctx, root, {})
        if isinstance(value, Feed):
            value.start()
            cursor = FeedCursor(value)
            with self._lock:
                self._cursors[token] = cursor
            try:
                return cursor.next_response()
            except errors.ReqlError:
                self._stop(token)
                raise
        if isinstance(value, Sequence):
            options = {name: ctx.global_optarg(name) for name in ('max_batch_rows', 'max_batch_bytes')}
            cursor = Cursor(value, {name: int(option) for name, option in options.items() if option})
            with cursor.lock:
                answer = cursor.next_response()
                if answer.startswith('{"t":%d' % ResponseType.SUCCESS_PARTIAL):
                    with self._lock:
                        self._cursors[token] = cursor
            return answer
        if isinstance(value, (Database, Func, Ordering)):
            raise errors.logic('Query result must be of type DATUM, GROUPED_DATA, or STREAM (got %s).'
                               % value_type_name(value))
        if isinstance(value, SingleSelection):
            value = value.row
        return response(ResponseType.SUCCESS_ATOM, '[' + datum.to_json(to_datum(value)) + ']')

    def _continue(self, token: int, cursor) -> str:
        if cursor is None:
            cursor = self.cursor(token)
        if cursor is None:
            raise errors.client_error('Token %d not in stream cache.' % token)
        with cursor.lock:
            try:
                answer = cursor.next_response()
            except errors.ReqlError:
                self._stop(token, cursor)
                raise
        if not answer.startswith('{"t":%d' % ResponseType.SUCCESS_PARTIAL):
            self._stop(token, cursor)
        return answer

    def _stop(self, token: int, cursor=None) -> None:
        """Forget a token's cursor (only `cursor`, when given: the token may name a newer query by now)."""
        with self._lock:
            if cursor is None or self._cursors.get(token) is cursor:
                cursor = self._cursors.pop(token, None)
        if isinstance(cursor, FeedCursor):
            cursor.stop()

    def _wait_noreply(self) -> None:
        with self._noreply_done:
            while self._noreply_running:
                self._noreply_done.wait()

    def close(self) -> None:
        """Forget every open cursor (and end the feeds)."""
        with self._lock:
            cursors = list(self._cursors.values())
            self._cursors.clear()
        for cursor in cursors:
            if isinstance(cursor, FeedCursor):
                cursor.stop()
