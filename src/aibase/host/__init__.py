"""This machine and the programs it runs; whatever starts a program comes here.

`proc` is the one subprocess runner (argument lists, echoed, with timeouts); `engine` is the
only module that runs `docker` (CLI and SDK), `buildlog` reads a failed build's output;
`git` asks about the checkout; `local_registry` runs the default registry on loopback (a
process or a container; reached over HTTP through registry/); `doctor` says whether this
host can run the pipeline; `standins` builds stand-in base images for hosts without Docker
Hub; `activity` reads what else runs here (the bench refuses to time beside another build).

May import: errors, log, probe (the engine sends its source into a container), config,
registry.
"""
