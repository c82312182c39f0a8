"""One error type per failure a user can act on; each message says what to do."""

from __future__ import annotations


class AibaseError(Exception):
    """Base for every expected failure: printed as one message, exit code 1."""

    def __init__(self, message: str, fix: str = "") -> None:
        self.message = message
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class ConfigError(AibaseError):
    """images.toml or an override is invalid."""


class EngineError(AibaseError):
    """The Docker Engine / buildx is missing or a command it ran failed."""


class BuildError(AibaseError):
    """A cell's build failed."""


class LockError(AibaseError):
    """A lock file is missing, stale, or could not be resolved."""


class RegistryError(AibaseError):
    """The registry could not be reached or refused an operation."""


class VerifyError(AibaseError):
    """An index does not satisfy the configuration."""


class PromoteError(AibaseError):
    """A floating tag was not (or could not be) moved."""
