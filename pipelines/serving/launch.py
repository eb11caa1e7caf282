"""Running the server: ``serve`` (the CLI's `serve`) starts uvicorn in the foreground, with one
process or several workers on one socket (``worker_app`` builds each worker's app)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pipelines.config import Settings

log = logging.getLogger(__name__)
WORKER_ENV = "PIPELINES_SERVE_WORKER"  # how uvicorn's worker processes find their settings (set by serve)


def worker_app() -> Any:
    """The app of one worker process: ``uvicorn --workers`` imports this factory in each."""
    import json

    from pipelines.config import load_settings
    from pipelines.log import setup
    from pipelines.serving.api import create_app

    setup()
    cfg = json.loads(os.environ[WORKER_ENV])
    return create_app(_with_remote_reload(load_settings(cfg["params"]), cfg["reload_any_host"]))


def _with_remote_reload(settings: Settings, reload_any_host: bool | None) -> Settings:
    if reload_any_host is None:
        return settings
    serve = settings.params.serve.model_copy(update={"reload_any_host": reload_any_host})
    return Settings(settings.params.model_copy(update={"serve": serve}), settings.root)


def serve(settings: Settings, host: str | None = None, port: int | None = None, reload_any_host: bool | None = None,
          workers: int = 1, params_file: str | None = None) -> None:
    """Run the server in the foreground until interrupted (uvicorn). With ``workers`` > 1,
    uvicorn's supervisor runs that many processes on one socket and replaces one that dies;
    each worker has its own models, poller, rollout and metrics (a scrape sees one worker)."""
    import json

    import uvicorn

    from pipelines.serving.api import create_app
    from pipelines.serving.api.deps import LOOPBACK

    settings = _with_remote_reload(settings, reload_any_host)  # a container's server is reached from other containers
    sp = settings.params.serve
    host, port = host or sp.host, port or sp.port
    if host not in LOOPBACK:
        log.warning("serving on %s: reachable from other machines (serve.host)", host)
    log.info("serving %s on http://%s:%s with %d worker(s) (docs at /docs, metrics at /metrics)",
             settings.params.project.model_name, host, port, workers)
    if workers <= 1:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False)
        return
    params = str(Path(params_file).resolve()) if params_file else str(settings.root / "params.yaml")
    os.environ[WORKER_ENV] = json.dumps({"params": params, "reload_any_host": reload_any_host})
    uvicorn.run("pipelines.serving.launch:worker_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)
