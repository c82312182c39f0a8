"""From merged indexes to moved floating tags, and the order of the steps. `verify` (an index
in the registry against the config), `smoke` (per platform, the probe's report against what
the variant promises), `promote` (the gate and the compare-and-swap tag move), `report` and
`notify`. `pipeline` runs the steps in one process (`invoke build-all`); `jobs` runs one step
per CI job, handing records on as files; `matrix` plans those jobs from images.toml.

May import: errors, github, log, names, state, build, config, host, registry.
"""
