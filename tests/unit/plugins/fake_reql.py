"""A stand-in for the rethinkdb driver's query builder: records each query's chain of calls and
answers `run()` from a function of that chain, so module logic is tested without a server."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from ansible.module_utils import _internal
from ansible.module_utils.common import warnings
from ansible.module_utils.testing import patch_module_args


class Query:
    """One ReQL query under construction: every attribute call extends the chain."""

    def __init__(self, fake, chain):
        self._fake = fake
        self.chain = chain

    def __getattr__(self, name):
        def call(*args, **kwargs):
            return Query(self._fake, self.chain + ((name, args, kwargs),))
        return call

    def __getitem__(self, key):
        return Query(self._fake, self.chain + (('bracket', (key,), {}),))

    def run(self, connection, **options):
        self._fake.queries.append((self.chain, options))
        return self._fake.answer(self.chain)


class FakeR:
    """`r` for the modules: `r.db(...)...run()` returns `answer(chain)`, where a chain is a tuple of
    (method, args, kwargs); `queries` lists every query run."""

    def __init__(self, answer):
        self.answer = answer
        self.queries = []

    def __getattr__(self, name):
        return getattr(Query(self, ()), name)


def names(chain) -> tuple:
    """The method names of a chain, e.g. ('db', 'table', 'count')."""
    return tuple(step[0] for step in chain)


def run_module(module_main, args: dict, capsys) -> dict:
    """Run a module's main() with args; return its parsed JSON result (failed or not).

    As in the process of a real module run, warnings start empty (Ansible keeps them in a global) and go
    into the result, even when a test elsewhere imported controller code (which sends them to the display).
    """
    with patch_module_args(args), mock.patch.dict(warnings._global_warnings, clear=True), \
            mock.patch.object(_internal, 'is_controller', False), pytest.raises(SystemExit):
        module_main()
    return json.loads(capsys.readouterr().out)


class Connection:
    """The connection a fake `connect` returns; records whether the module closed it."""

    closed = False
    noreply_wait = None

    def close(self, noreply_wait: bool = True):
        self.closed = True
        self.noreply_wait = noreply_wait
