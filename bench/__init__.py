"""`make bench`: the collection's figures, each measured side by side with the raw tool it must keep up with.

`python -m bench.run` (what `make bench` runs) starts local clusters, generates BigchainDB-shaped data, runs the
collection's modules and roles alternately with `rethinkdb dump`, `tar | zstd`, `zstd -d | tar -x` and `cp -a`,
and writes the figures as JSON to bench/results/<UTC time>.json and bench/results/latest.json. Modules:

    run       the command line: which parts run, parameters, clean-up, results
    timing    alternating contenders, medians and minimums, ratios, targets
    procs     child processes: checked commands and pipelines, modules run directly, ansible-playbook runs
    machine   facts about the machine and the tools, recorded with every result
    datasets  loaded clusters, a node data directory scaled up from their files, a background writer
    dump      figures 1 and 2: the dump module and the backup role against `rethinkdb dump`
    archive   figures 3 and 4: snapshot archives and their unpacking against tar and zstd
    snapshot  figures 5 and 6: btrfs snapshot skew and take time, the fsfreeze copy against `cp -a`
    report    the JSON files and the table printed at the end
"""
