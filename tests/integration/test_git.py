"""What git says about the checkout, asked of a real git in a throwaway repository (no
engine): promote refuses an index built from any input that is not what the commit holds."""

from __future__ import annotations

import subprocess
from pathlib import Path

from aibase.host import git


def _repo(root: Path) -> Path:
    root.mkdir()
    for name, text in {"kept": "a\n", "edited": "a\n", "staged": "a\n", "deleted": "a\n"}.items():
        (root / name).write_text(text)
    (root / ".gitignore").write_text("ignored\n")
    run = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*run, "init", "-q"], check=True)
    subprocess.run([*run, "add", "-A"], check=True)
    subprocess.run([*run, "commit", "-q", "-m", "inputs"], check=True)
    (root / "edited").write_text("b\n")
    (root / "staged").write_text("b\n")
    subprocess.run([*run, "add", "staged"], check=True)
    (root / "deleted").unlink()
    (root / "new").write_text("a\n")
    (root / "ignored").write_text("a\n")
    return root


def test_every_way_an_input_can_differ_from_the_commit_is_found(tmp_path: Path) -> None:
    root = _repo(tmp_path / "checkout")
    outside = tmp_path / "elsewhere.toml"
    outside.write_text("a\n")
    names = ["kept", "edited", "staged", "deleted", "new", "ignored", "absent"]
    found = git.uncommitted(root, [*(root / n for n in names), outside])
    assert found == [str(root / n) for n in ("edited", "staged", "deleted", "new", "ignored")] + [
        str(outside)
    ]
