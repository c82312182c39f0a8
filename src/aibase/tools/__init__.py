"""Commands a person runs beside the pipeline, built on top of it; nothing imports them.

`bench` measures how fast builds and updates are, ours against the old single-layer shape
(`imagesize` is its size measure, `bench_checks` what keeps it honest, `bench_report` its
table, `bench_floor` the floor a cold build is judged against); `clean` gives back the disk
builds took; `describe` says what the registry holds (images, inspect, diff); `update` moves
a package pin and re-locks (the old guide's update steps); `base_pins` refreshes the base and
installer image digest pins in images.toml; `lock_review` is a pull request's dependency
review (`audit --base`: each lock change with its advisories, in the job summary);
`rebuild_check` rebuilds an index's Python layers from its revision and compares them
(`rebuild_plan` its planning, `layer_diff` the first differing file).

May import: errors, github, log, names, state, audit, build, config, host, registry, release.
"""
