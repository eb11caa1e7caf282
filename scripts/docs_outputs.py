"""Capture the sample outputs the documentation shows, from a real run.

    .venv/bin/python scripts/docs_outputs.py     # about 3 minutes: `make run` in a fresh copy of HEAD

The quickstart shows what `make run` prints. Rather than a hand-written sample that goes stale,
this runs the quickstart's command in a fresh copy of the committed tree (the project's .venv
linked in) and writes the summary it ends with into README.md's quickstart, between the
`make-run-output` markers (the docs site's quickstart page includes that section).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
START, END = "<!-- make-run-output: written by scripts/docs_outputs.py -->\n```\n", "```\n<!-- /make-run-output -->"


def fresh_copy(dest: Path) -> str:
    """The committed tree at HEAD in `dest` (a git repository of its own), the venv linked in."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / ".venv").symlink_to(REPO / ".venv")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=docs", "-c", "user.email=docs@localhost",
                                                  "commit", "-qm", "copy"]):
        subprocess.run(["git", *args], cwd=dest, check=True)
    return commit


def summary(stdout: str) -> str:
    """The summary `make run` ends with (from its `Champion:` line): the stages' own output above
    it is DVC's and changes with every run."""
    start = stdout.find("Champion: ")
    if start < 0:
        raise SystemExit("error: make run printed no `Champion:` summary line")
    return stdout[start:]


def main() -> int:
    if len(sys.argv) > 1:
        print(__doc__)
        return 0
    with tempfile.TemporaryDirectory(prefix="docs-outputs-") as tmp:
        project = Path(tmp)
        commit = fresh_copy(project)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PIPELINES_", "VIRTUAL_ENV"))}
        print(f"==> make run in a fresh copy of {commit} (about 3 minutes)", file=sys.stderr)
        start = time.monotonic()
        run = subprocess.run(["make", "run"], cwd=project, env=env, capture_output=True, text=True, check=False)
        took = time.monotonic() - start
        if run.returncode != 0:
            print(f"error: make run failed ({run.returncode}): {run.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return 1
        text = summary(run.stdout.replace(str(project), "..."))
    readme = README.read_text()
    head, rest = readme.split(START, 1)
    tail = rest.split(END, 1)[1]
    README.write_text(head + START + text + END + tail)
    print(f"README.md: make run's output from {commit} ({len(text.splitlines())} lines; make run took {took / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
