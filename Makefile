# The two commands a new user needs: `make demo` and `make test`. Both set up what they need first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV := .venv
PYTHON := $(CURDIR)/$(VENV)/bin/python
COLLECTIONS := $(CURDIR)/.build/collections
COLLECTION := $(COLLECTIONS)/ansible_collections/bigchaindb/rethinkdb
SANITY_ROOT := $(CURDIR)/.build/sanity/ansible_collections/bigchaindb/rethinkdb
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PYTHONPATH := $(COLLECTIONS):$(CURDIR)
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_NOCOLOR := 1
# The tests import each other as the collection's package (ansible_collections.bigchaindb.rethinkdb.tests...), as
# `ansible-test units` runs them: pytest takes them through the collection's link, so that each file has that name.
PYTEST := $(PYTHON) -m pytest -p no:cacheprovider -o consider_namespace_packages=true --rootdir $(COLLECTION)

.PHONY: demo test setup changelog sanity lint unit conformance integration bench build clean

demo: setup
	$(PYTHON) -m demo

test: setup changelog sanity lint unit conformance integration

setup:
	@tools/bootstrap

changelog: setup
	antsibull-changelog lint

# ansible-test wants the collection under ansible_collections/<namespace>/<name> and lists its files
# with git: copy what git tracks (and new files it does not ignore) there, into a repository of its own.
sanity: setup
	rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t $(SANITY_ROOT)
	cd $(SANITY_ROOT) && git init -q && git add -A && ansible-test sanity --local --requirements --python $$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])') --color no
	# The modules run on the nodes' Python too (tests/config.yml: 3.9 or newer): compile and import them on the
	# system's Python as well.
	cd $(SANITY_ROOT) && ansible-test sanity --venv --requirements --python $$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') --test compile --test import --color no

lint: setup
	ansible-lint --profile production --nocolor

unit: setup
	$(PYTEST) $(COLLECTION)/tests/unit

conformance: setup
	$(PYTEST) $(COLLECTION)/tests/conformance

# The integration tests spend much of their time waiting on servers and playbooks: their files run side by side,
# each file in one worker (its module fixtures shared), the slowest tests listed at the end.
INTEGRATION_WORKERS ?= 3
integration: setup
	$(PYTEST) -n $(INTEGRATION_WORKERS) --dist loadfile --durations 15 $(COLLECTION)/tests/integration

bench: setup
	$(PYTHON) -m bench.run

build: setup
	ansible-galaxy collection build --force --output-path .build/dist

clean:
	rm -rf .build $(VENV)
