"""A small client for the online server's admin calls: check the registry's aliases now
(``POST /reload``) and the rollout's actions (``POST /rollout/{action}``), with the bearer token
from $PIPELINES_RELOAD_TOKEN. Standard library only: the CLI and the Airflow tasks use it."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipelines.errors import PipelineError

TOKEN_ENV = "PIPELINES_RELOAD_TOKEN"  # noqa: S105 - the name of the variable holding the token, not a token
URL_ENV = "PIPELINES_SERVER_URL"
ROLLOUT_ACTIONS = ("check", "pause", "resume", "advance", "abort")


class ServerRefused(PipelineError):
    """The server answered with an error status (a wrong token, an action it cannot take)."""

    def __init__(self, message: str, status: int, body: str) -> None:
        super().__init__(message)
        self.status, self.body = status, body


class ServerUnreachable(PipelineError):
    """No server answered at the URL (or it answered something that is not JSON)."""


class ServerClient:
    """The admin calls of the server at ``url``; ``token`` defaults to $PIPELINES_RELOAD_TOKEN."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 60.0) -> None:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):  # urlopen would also open file: and ftp: URLs
            raise PipelineError(f"the server URL must be an http:// or https:// URL, got {url!r}")
        self.url = url.rstrip("/")
        self.token = os.environ.get("PIPELINES_RELOAD_TOKEN", "") if token is None else token
        self.timeout_s = timeout_s

    def reload(self) -> dict[str, Any]:
        """Make the server check the registry's aliases now; what it serves afterwards."""
        return self._post("/reload", "reload")

    def rollout(self, action: str, reason: str | None = None) -> dict[str, Any]:
        """``check`` the rollout now, or ``pause``, ``resume``, ``advance`` or ``abort`` it; the
        rollout's state (check) or the decision record (the others)."""
        if action not in ROLLOUT_ACTIONS:
            raise PipelineError(f"unknown rollout action {action!r}: check, pause, resume, advance or abort")
        query = f"?reason={urllib.parse.quote(reason)}" if reason else ""
        return self._post(f"/rollout/{action}{query}", f"rollout {action}")

    def _post(self, path: str, what: str) -> dict[str, Any]:
        req = urllib.request.Request(  # noqa: S310 - http(s) only (checked in __init__)
            self.url + path, method="POST", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - http(s) only (checked in __init__)
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:300]
            raise ServerRefused(f"{what} refused by {self.url}: {exc.code} {body}", exc.code, body) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ServerUnreachable(f"no online server at {self.url} (set {URL_ENV}): {exc}") from exc
        except ValueError as exc:
            raise ServerUnreachable(f"{what}: the server at {self.url} did not answer JSON: {exc}") from exc


def reload_summary(out: dict[str, Any] | None) -> str:
    """What the server said after a reload call, in one line (None: no call was made or it failed)."""
    if out is None:
        return f"not notified (no {URL_ENV}, or unreachable)"
    return f"serves v{(out.get('champion') or {}).get('version')}"
