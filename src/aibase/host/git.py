"""What git says about the checkout the images are built from."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from aibase import log
from aibase.errors import ConfigError
from aibase.host import proc


def revision(cwd: Path) -> str:
    """HEAD of the checkout the tool runs in (the Dockerfiles and the tool live there)."""
    result = proc.run(["git", "-C", str(cwd), "rev-parse", "HEAD"], echo=False, timeout=proc.QUICK)
    if not result.ok:
        raise ConfigError(
            f"{cwd} is not a git checkout with a commit: the revision label needs one",
            "build from a clone of the repository (git commit first), or set AIBASE_REVISION",
        )
    return result.stdout.strip()


def toplevel(cwd: Path) -> Path:
    """The checkout's root (images.toml may sit in a subfolder: the fixture's does)."""
    result = proc.run(
        ["git", "-C", str(cwd), "rev-parse", "--show-toplevel"], echo=False, timeout=proc.QUICK
    )
    if not result.ok:
        raise ConfigError(f"{cwd} is not in a git checkout", "run from a clone of the repository")
    return Path(result.stdout.strip())


def uncommitted(cwd: Path, paths: Sequence[Path]) -> list[str]:
    """The paths whose content is not what HEAD holds: changed, staged, deleted, new,
    ignored, or outside the checkout. A path in neither HEAD nor the checkout is no change
    (an optional input, such as an allowlist, that is not there)."""
    found = []
    for path in paths:
        argv = [
            "git",
            "-C",
            str(cwd),
            "status",
            "--porcelain",
            "--ignored",
            "--untracked-files=all",
        ]
        status = proc.run([*argv, "--", str(path)], echo=False, timeout=proc.QUICK)
        if not status.ok or status.stdout.strip():
            found.append(str(path))
    return found


def is_ancestor(cwd: Path, older: str, newer: str) -> bool | None:
    """True when `older` is an ancestor of `newer`; None when git does not know both (a
    shallow clone, a commit from elsewhere)."""
    for commit in (older, newer):
        known = proc.run(
            ["git", "-C", str(cwd), "cat-file", "-e", f"{commit}^{{commit}}"],
            echo=False,
            timeout=proc.QUICK,
        )
        if not known.ok:
            return None
    result = proc.run(
        ["git", "-C", str(cwd), "merge-base", "--is-ancestor", older, newer],
        echo=False,
        timeout=proc.QUICK,
    )
    return result.returncode == 0


def resolve(cwd: Path, revision: str) -> str:
    """The commit `revision` names; a clear error where this clone does not have it."""
    result = proc.run(
        ["git", "-C", str(cwd), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        echo=False,
        timeout=proc.QUICK,
    )
    if not result.ok:
        raise ConfigError(
            f"{revision!r} is not a commit this clone of {cwd} has",
            "fetch it (actions/checkout with fetch-depth: 2 has a pull request's base, HEAD^1), "
            "or name another revision",
        )
    return result.stdout.strip()


def files_at(folder: Path, commit: str) -> list[str]:
    """The names of the files `folder` held at `commit` ([] where it did not exist)."""
    result = proc.run(
        ["git", "-C", str(folder), "ls-tree", "--name-only", commit, "--", "."],
        echo=False,
        timeout=proc.QUICK,
    )
    return result.stdout.split() if result.ok else []


def file_at(path: Path, commit: str) -> str | None:
    """`path`'s content at `commit` (`git show COMMIT:./NAME`); None where it had none."""
    result = proc.run(
        ["git", "-C", str(path.parent), "show", f"{commit}:./{path.name}"],
        echo=False,
        timeout=proc.QUICK,
    )
    return result.stdout if result.ok else None


def has_commit(cwd: Path, commit: str) -> bool:
    """Whether this clone holds the commit (a shallow or stale clone may not)."""
    argv = ["git", "-C", str(cwd), "cat-file", "-e", f"{commit}^{{commit}}"]
    return proc.run(argv, echo=False, timeout=proc.QUICK).ok


@contextmanager
def worktree(cwd: Path, commit: str, path: Path) -> Iterator[Path]:
    """A detached checkout of `commit` at `path`, beside this one (which stays as it is),
    removed afterwards, on failure and interrupt too."""
    add = ["git", "-C", str(cwd), "worktree", "add", "--detach", str(path), commit]
    try:  # an interrupt during the checkout leaves a registered worktree: removed below too
        result = proc.run(add, timeout=proc.QUICK * 5)
        if not result.ok:
            raise ConfigError(
                f"could not check out {commit} in a worktree: {result.stderr.strip()[-300:]}",
                "see git's message; `git worktree prune` drops a stale worktree",
            )
        yield path
    finally:
        removed = proc.run(
            ["git", "-C", str(cwd), "worktree", "remove", "--force", str(path)],
            timeout=proc.QUICK,
        )
        if not removed.ok and path.exists():
            log.warn(f"worktree {path} is left behind: `git worktree remove --force {path}`")


def differs(cwd: Path, commit: str, paths: Sequence[str]) -> bool:
    """Whether `paths` hold anything else at `commit` than in this checkout's HEAD."""
    argv = ["git", "-C", str(cwd), "diff", "--quiet", commit, "HEAD", "--", *paths]
    return proc.run(argv, echo=False, timeout=proc.QUICK).returncode != 0
