"""This machine and the programs it runs. `proc` (the one subprocess runner: argument lists,
echoed, with timeouts), `engine` (the only module that runs `docker`: CLI and SDK) and
`buildlog` (what a failed build's output says), `git` (the checkout), `local_registry` (the
default registry on loopback: a process or a container on this host, reached over HTTP
through registry/), `doctor` (can this host run the pipeline?) and `standins` (stand-in base
images for hosts without Docker Hub). Everything above that starts a program comes here.

May import: errors, log, probe (the engine sends its source into a container), config,
registry.
"""
