"""The served models and how they change: the champion (and a challenger) come from the champion
store (pipelines/model/champion.py), loaded by alias, artifact hash verified, warmed on a probe
row, then swapped in with one reference assignment. Requests read the served models once, so a
swap never fails a request. The previous champion stays in memory: a rollback to it is a
pointer swap, not a load. If the registry cannot be reached, the store keeps what it has and
says why."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pipelines.config import Settings
from pipelines.errors import PipelineError, first_line
from pipelines.model.champion import current_alias, load_verified
from pipelines.model.features import score_frame
from pipelines.serving.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """One loaded, verified, warmed model version."""

    alias: str
    version: str
    run_id: str
    sha256: str
    model: Any
    categories: dict[str, list[str]]
    loaded_at: float

    def describe(self) -> dict[str, Any]:
        return {"alias": self.alias, "version": self.version, "run_id": self.run_id, "sha256": self.sha256,
                "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at))}


@dataclass(frozen=True)
class Served:
    """What answers now. Replaced whole (one assignment), never changed in place."""

    champion: Variant | None = None
    challenger: Variant | None = None
    previous: Variant | None = None  # the last champion, kept for an instant rollback


def known_categories(model: Any, categorical: list[str]) -> dict[str, list[str]]:
    """The categories the model's CategoryCoder learned (empty for another kind of model)."""
    steps = getattr(model, "named_steps", {})
    pre = steps.get("preprocess") if isinstance(steps, dict) or hasattr(steps, "get") else None
    coder = getattr(pre, "named_transformers_", {}).get("cat") if pre is not None else None
    cats = getattr(coder, "categories_", None)
    return {c: list(v) for c, v in zip(categorical, cats, strict=False)} if cats is not None else {}


class ModelStore:
    """The served models and how they change: check the aliases, load, verify, warm, swap."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.state = Served()
        self.registry_ok: bool | None = None
        self.registry_error: str | None = None
        self.load_errors: dict[str, str] = {}
        self.checked_at: float | None = None
        self._lock = threading.Lock()  # one refresh at a time (the poller and /reload)

    def warm(self, model: Any) -> None:
        """Score probe rows once, so the first request pays no lazy initialisation, and a model
        that cannot score at all is refused before it serves."""
        import pandas as pd

        d = self.settings.params.data
        frame = pd.DataFrame({**{c: [np.nan, 0.0] for c in d.numerical}, **{c: [None, None] for c in d.categorical}})
        scores = score_frame(model, frame, d, self.settings.params.score.chunk_rows)
        if len(scores) != len(frame):
            raise PipelineError(f"warm-up returned {len(scores)} scores for {len(frame)} rows")

    def _load(self, alias: str) -> Variant | None:
        model, mv, signature = load_verified(self.settings, alias)
        if model is None:
            return None
        d = self.settings.params.data
        if signature is not None and sorted(signature.inputs.input_names()) != sorted(d.features):
            raise PipelineError(f"v{mv.version} ({alias}) expects inputs {signature.inputs.input_names()}, "
                                f"params.yaml data features are {d.features}")
        self.warm(model)
        return Variant(alias, str(mv.version), mv.run_id or "", mv.tags.get("model_sha256", ""), model,
                       known_categories(model, d.categorical), time.time())

    def _resolve(self, alias: str, mv: Any, state: Served) -> Variant | None:
        current = state.champion if alias == "champion" else state.challenger
        if mv is None:
            if alias == "champion" and current is not None:
                log.warning("the registry has no champion alias any more; still serving v%s", current.version)
                return current
            return None
        version = str(mv.version)
        for kept in (state.champion, state.challenger, state.previous):
            if kept is not None and kept.version == version:
                return kept if kept.alias == alias else replace(kept, alias=alias)
        try:
            loaded = self._load(alias)
        except Exception as exc:  # noqa: BLE001 - a bad artifact (hash, unpickling, warm-up): keep what serves, say why
            self.load_errors[alias] = f"v{version}: {first_line(exc)}"
            self.metrics.load_failures.labels(alias).inc()
            log.error("not serving %s v%s: %s", alias, version, first_line(exc))
            return current
        self.load_errors.pop(alias, None)
        self.metrics.swaps.labels(alias).inc()
        log.info("loaded %s v%s (hash verified, warmed)", alias, version)
        return loaded

    def refresh(self) -> dict[str, Any]:
        """Check both aliases; load what moved; swap atomically. Never raises."""
        with self._lock:
            self.checked_at = time.time()
            try:
                champ_mv = current_alias(self.settings, "champion")
                chal_mv = current_alias(self.settings, "challenger")
            except Exception as exc:  # noqa: BLE001 - registry down (network, database, server error): keep serving
                self.registry_ok, self.registry_error = False, first_line(exc)
                self.metrics.registry_up.set(0)
                log.warning("registry unreachable, still serving what is loaded: %s", self.registry_error)
                return self.describe()
            self.registry_ok, self.registry_error = True, None
            self.metrics.registry_up.set(1)
            state = self.state
            champion = self._resolve("champion", champ_mv, state)
            challenger = self._resolve("challenger", chal_mv, state)
            if challenger is not None and champion is not None and challenger.version == champion.version:
                challenger = None
            previous = state.previous
            if state.champion is not None and champion is not None and champion.version != state.champion.version:
                previous = state.champion
            self.state = Served(champion, challenger, previous)  # the swap: one assignment
            self._publish()
            return self.describe()

    def _publish(self) -> None:
        s = self.state
        self.metrics.model_info.clear()
        for v in (s.champion, s.challenger, s.previous):
            if v is not None:
                alias = v.alias if v is not s.previous else "previous"
                self.metrics.model_info.labels(alias, v.version, v.run_id, v.sha256[:12]).set(1)
        self.metrics.ready.set(1 if s.champion is not None else 0)

    def describe(self) -> dict[str, Any]:
        s = self.state
        return {
            "champion": s.champion.describe() if s.champion else None,
            "challenger": s.challenger.describe() if s.challenger else None,
            "previous": s.previous.describe() if s.previous else None,
            "registry_reachable": self.registry_ok,
            "registry_error": self.registry_error,
            "load_errors": dict(self.load_errors),
        }
