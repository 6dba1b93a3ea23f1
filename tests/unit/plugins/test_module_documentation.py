"""Every module's EXAMPLES show each of its options, and its RETURN gives a sample of every key.

Not under modules/: it reads the documentation with the controller's ansible.utils.plugin_docs, which
`ansible-test units` offers to controller tests only (module tests get ansible.module_utils alone)."""

from __future__ import annotations

import importlib
import pathlib

import pytest
import yaml

from ansible.utils.plugin_docs import read_docstring

from ansible_collections.bigchaindb.rethinkdb.plugins import modules

MODULES_DIR = pathlib.Path(list(modules.__path__)[0])
MODULES = sorted(path for path in MODULES_DIR.glob('*.py') if path.name != '__init__.py')


def documentation(path: pathlib.Path) -> tuple:
    """The module's options (its doc fragments' included), EXAMPLES as tasks, and RETURN."""
    docs = read_docstring(str(path))
    doc = docs['doc']
    options = dict(doc.get('options') or {})
    for fragment in doc.get('extends_documentation_fragment') or []:
        name = fragment.split('.')[-1]
        fragment_module = importlib.import_module('ansible_collections.bigchaindb.rethinkdb.plugins.doc_fragments.' + name)
        options.update(yaml.safe_load(fragment_module.ModuleDocFragment.DOCUMENTATION).get('options') or {})
    return options, yaml.safe_load(docs['plainexamples']) or [], docs['returndocs'] or {}


def options_shown(tasks: list, module: str) -> set:
    """The options of every call of module in a list of tasks, blocks included."""
    shown = set()
    for task in tasks:
        for key, value in task.items():
            if key in ('block', 'rescue', 'always'):
                shown |= options_shown(value, module)
            elif key == 'bigchaindb.rethinkdb.' + module and isinstance(value, dict):
                shown |= set(value)
    return shown


def keys_without_sample(returns: dict, prefix: str = '') -> list:
    """Returned keys with no sample of their own nor in a parent's; a key that contains others may give theirs."""
    missing = []
    for key, spec in returns.items():
        if 'sample' in spec:
            continue
        if 'contains' in spec:
            missing += keys_without_sample(spec['contains'], prefix + key + '.')
        else:
            missing.append(prefix + key)
    return missing


@pytest.mark.parametrize('path', MODULES, ids=[path.stem for path in MODULES])
def test_examples_show_every_option(path):
    options, examples, _returns = documentation(path)
    assert sorted(set(options) - options_shown(examples, path.stem)) == []


@pytest.mark.parametrize('path', MODULES, ids=[path.stem for path in MODULES])
def test_every_returned_key_has_a_sample(path):
    _options, _examples, returns = documentation(path)
    assert keys_without_sample(returns) == []
