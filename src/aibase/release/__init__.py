"""From merged indexes to moved floating tags, and the order of the steps.

`verify` checks an index in the registry against the config, `smoke` the probe's report on
each platform against what the variant promises, `unchanged` whether a new index holds what
is already promoted, `promote_gate` what must hold before a tag moves (pure), `promote` the
compare-and-swap tag move, then `report` and `notify`. `pipeline` runs the steps in one
process (`invoke build-all`); `jobs` runs one step per CI job, handing records on as files;
`matrix` plans those jobs from images.toml.

May import: errors, github, log, names, state, audit, build, config, host, registry.
"""
