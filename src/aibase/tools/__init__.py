"""Commands a person runs beside the pipeline, each on top of it: `bench` (how fast builds
and updates are, ours against the old single-layer shape; `imagesize` is its measure),
`clean` (give back the disk builds took), `describe` (what the registry holds: images,
inspect, diff), `update` (a package pin moved and re-locked: the old guide's update steps)
and `base_pins` (the base and installer image digest pins in images.toml). Nothing below
imports them.

May import: errors, log, names, state, build, config, host, registry, release.
"""
