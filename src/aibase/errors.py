"""Every error a user can act on: one class per failure, each with its own exit code and a
message that says what to do. Tasks turn them into one line on stderr and that exit code;
anything else is a bug and keeps its traceback.

Top level: every package raises these.
May import: nothing.
"""

from __future__ import annotations


class AibaseError(Exception):
    """Base for every expected failure. Subclasses set `exit_code` (listed in the README).
    `details` (the values behind the message) are printed only with --debug."""

    exit_code = 1

    def __init__(self, message: str, fix: str = "", *, details: tuple[str, ...] = ()) -> None:
        self.message = message
        self.fix = fix
        self.details = details  # what --debug adds under the one-line message
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class ConfigError(AibaseError):
    """images.toml, a flag or an AIBASE_* variable is invalid."""

    exit_code = 2


class EngineError(AibaseError):
    """The Docker Engine or buildx is missing, unreachable, or a command it ran failed."""

    exit_code = 3


class RegistryError(AibaseError):
    """A registry could not be reached, refused an operation, or answered oddly."""

    exit_code = 4


class RegistryUnreachable(RegistryError):
    """A registry does not answer at all: down, wrong address, nothing listening."""

    exit_code = 15


class NotFound(RegistryError):
    """A manifest, blob or repository does not exist in the registry (HTTP 404)."""

    exit_code = 5


class LockError(AibaseError):
    """A lock file is missing, stale, or could not be resolved."""

    exit_code = 6


class BuildError(AibaseError):
    """A cell's build, its push, or the merge of the cells failed."""

    exit_code = 7


class StateError(AibaseError):
    """A run record (cell, variant state) is missing, truncated or from another run."""

    exit_code = 8


class VerifyError(AibaseError):
    """An index does not satisfy the configuration."""

    exit_code = 9


class SmokeError(AibaseError):
    """An image failed its smoke tests on at least one platform."""

    exit_code = 10


class PromoteError(AibaseError):
    """A floating tag was not (or could not be) moved."""

    exit_code = 11


class ProbeReportError(EngineError):
    """The probe in an image printed no report this version of ai-base reads: none, one of
    another version, or one missing a field."""

    exit_code = 17


class Timeout(AibaseError):
    """A command or a container did not finish in time (network calls: RegistryError)."""

    exit_code = 14


class AuditError(AibaseError):
    """The audit could not run (service unreachable, policy file invalid): nothing is known."""

    exit_code = 12


class VulnerabilitiesFound(AibaseError):
    """The audit ran and found vulnerabilities the allowlist does not accept."""

    exit_code = 13


class NotifyError(AibaseError):
    """A promotion happened, but telling the dependent services about it failed."""

    exit_code = 16


class BenchRefused(AibaseError):
    """The bench would report a figure it did not measure: a cold build that hit the cache,
    another build on the engine, a builder whose cache it may not prune."""

    exit_code = 18


class NotReproduced(AibaseError):
    """A rebuild of an index's revision made a Python layer that differs from the published
    one (rebuild-check)."""

    exit_code = 19


ALL_ERRORS: tuple[type[AibaseError], ...] = (
    ConfigError,
    EngineError,
    RegistryError,
    RegistryUnreachable,
    NotFound,
    LockError,
    BuildError,
    StateError,
    VerifyError,
    SmokeError,
    PromoteError,
    AuditError,
    VulnerabilitiesFound,
    Timeout,
    NotifyError,
    ProbeReportError,
    BenchRefused,
    NotReproduced,
)
INTERRUPTED_EXIT = 130  # SIGINT / SIGTERM, as shells report it
