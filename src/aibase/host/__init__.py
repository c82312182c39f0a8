"""This machine and the programs it runs; whatever starts a program comes here.

`proc` is the one subprocess runner (argument lists, echoed, with timeouts); `engine` (the
engine, its containers and images; CLI and SDK), `engine_build` (the builds) and
`engine_private` (an empty engine of a run's own) are the only modules that run `docker`;
`sdk_errors` says what a failed SDK call means, `probe_report` parses the probe's report
(once, into typed records); `buildx` writes a build's command line (pure); `buildlog` reads
a failed build's output; `git` asks about the checkout;
`local_registry` runs the default registry on loopback (a process or a container; reached
over HTTP through registry/); `doctor` says whether this host can run the pipeline;
`standins` builds stand-in base images for hosts without Docker Hub; `activity` reads what
else runs here (the bench refuses to time beside another build).

May import: errors, log, probe (the engine sends its source into a container), config,
registry.
"""
