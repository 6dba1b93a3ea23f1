"""The cluster metadata every server keeps and persists: databases, tables, users and servers.

Each entry is versioned with a Lamport timestamp `[counter, server id]`; when two servers disagree, the higher
version wins (deletions are tombstones, so they win too). A server that was away gets the entries it missed when
it reconnects, and every change is broadcast to the servers connected at the time.
"""

from __future__ import annotations

import threading

from .storage import MetadataStore

ENTRY_PREFIX = 'entry:'


def _newer(candidate: dict, current: dict | None) -> bool:
    return current is None or tuple(candidate['v']) > tuple(current['v'])


class ClusterMetadata:
    """Versioned entries by key (`db/<id>`, `table/<id>`, `user/<name>`, `server/<id>`)."""

    def __init__(self, store: MetadataStore, server_id: str, stored: dict):
        self._store = store
        self._server_id = server_id
        self._lock = threading.RLock()
        self._entries = {name[len(ENTRY_PREFIX):]: entry for name, entry in stored.items()
                         if name.startswith(ENTRY_PREFIX)}
        self._clock = max([entry['v'][0] for entry in self._entries.values()] + [0])
        self.listeners: list = []

    def get(self, key: str):
        """The live value of an entry, or None."""
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry['deleted']:
            return None
        return entry['value']

    def version(self, key: str) -> list | None:
        """The version of an entry (live or deleted)."""
        with self._lock:
            entry = self._entries.get(key)
        return entry['v'] if entry else None

    def items(self, kind: str) -> list:
        """[(id, value)] of the live entries of a kind (`db`, `table`, `user`, `server`)."""
        prefix = kind + '/'
        with self._lock:
            return [(key[len(prefix):], entry['value']) for key, entry in self._entries.items()
                    if key.startswith(prefix) and not entry['deleted']]

    def entries(self) -> dict:
        """Every entry, for a peer that connects."""
        with self._lock:
            return dict(self._entries)

    def put(self, key: str, value, base_version: list | None = None) -> dict:
        """Set an entry with a new version; returns the entry to broadcast."""
        return self._write(key, value, False, base_version)

    def delete(self, key: str) -> dict:
        """Delete an entry (a tombstone with a new version)."""
        return self._write(key, None, True, None)

    def _write(self, key: str, value, deleted: bool, base_version) -> dict:
        with self._lock:
            floor = base_version[0] if base_version else 0
            self._clock = max(self._clock, floor) + 1
            entry = {'v': [self._clock, self._server_id], 'deleted': deleted, 'value': value}
            self._entries[key] = entry
            self._store.save({ENTRY_PREFIX + key: entry})
        self._notify([key])
        return {key: entry}

    def merge(self, incoming: dict) -> list:
        """Take the entries newer than ours; returns the keys that changed."""
        changed = {}
        with self._lock:
            for key, entry in incoming.items():
                if _newer(entry, self._entries.get(key)):
                    self._entries[key] = entry
                    changed[key] = entry
                    self._clock = max(self._clock, entry['v'][0])
            if changed:
                self._store.save({ENTRY_PREFIX + key: entry for key, entry in changed.items()})
        if changed:
            self._notify(list(changed))
        return list(changed)

    def _notify(self, keys: list) -> None:
        for listener in list(self.listeners):
            listener(keys)
