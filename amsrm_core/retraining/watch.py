"""Hot swap: a worker serving from the registry follows its ``current`` pointer.

Why watch the registry rather than a model-updates topic: the pointer is the one
source of truth, so a worker that starts late, restarts, or polls after a manual
rollback always converges to it; a topic would be a second truth that can disagree
with it (a message lost, replayed or reordered; the embedded broker keeps topics only
in memory), would need its own retention rules, and every worker would still read the
registry to load the weights.  Reading one small file every ``model_poll_s`` seconds
costs nothing.  The price: a promotion reaches the workers within one poll interval,
and the registry must sit on storage every worker can read (a shared volume).

A new version is loaded and verified in a thread — checksums, weights, the Scorer and
its item representations — while the worker keeps scoring with the old one; the agent
then swaps between micro-batches (streams.worker.agents).  A version that fails to load is
refused with an error in the log, and the old model keeps serving; the pointer is not
tried again until it changes (a new promotion, a rollback, or the same version promoted
again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from amsrm_core.registry import LoadedVersion, ModelRegistry, Pointer, RegistryError
from amsrm_core.scoring import Scorer, release

log = logging.getLogger(__name__)

BuildScorer = Callable[[LoadedVersion], Scorer]


def pointer_key(pointer: Pointer) -> tuple[str, str, int]:
    """Every promotion writes a new key, even of the same version (a retry after a refusal)."""
    return pointer.version, pointer.manifest_sha256, pointer.at_ms


class ModelWatcher:
    def __init__(self, registry: ModelRegistry, build: BuildScorer, poll_s: float, serving: Pointer) -> None:
        self.registry, self.build, self.poll_s = registry, build, poll_s
        self.serving = serving  # the version the worker scores with
        self._handled = pointer_key(serving)  # the latest pointer loaded or refused
        self._ready: tuple[Pointer, Scorer] | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="model-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._ready is not None:  # loaded but never taken
            release(self._ready[1])
            self._ready = None

    def take(self) -> Scorer | None:
        """The newly loaded scorer, once; the caller switches to it between micro-batches."""
        if self._ready is None:
            return None
        (pointer, scorer), self._ready = self._ready, None
        log.info("switching from %s to %s (%s)", self.serving.version, pointer.version, scorer.version)
        self.serving = pointer
        return scorer

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                await self.poll()
            except Exception:  # the watcher must outlive any surprise; the worker keeps serving
                log.exception("checking the model registry %s failed", self.registry.root)

    async def poll(self) -> None:
        """Load the pointer's version if it changed; refuse it (keep serving) if it fails."""
        pointer = await asyncio.to_thread(self.registry.current)
        if pointer is None or pointer_key(pointer) == self._handled:
            return
        self._handled = pointer_key(pointer)
        try:
            scorer = await asyncio.to_thread(self._load, pointer)
        except Exception as e:
            log.error("refusing model version %s: %s; still serving %s", pointer.version, e,
                      self.serving.version)
            return
        if self._ready is not None:  # an earlier promotion the agent has not switched to yet
            release(self._ready[1])
        self._ready = (pointer, scorer)
        log.info("loaded model version %s (%s); switching before the next micro-batch", pointer.version,
                 scorer.version)

    def _load(self, pointer: Pointer) -> Scorer:
        return self.build(self.registry.load(pointer.version, pointer.manifest_sha256))


def serve_current(registry: ModelRegistry, build: BuildScorer, poll_s: float) -> tuple[Scorer, ModelWatcher]:
    """The scorer of the registry's current version, and a watcher that follows the pointer from there."""
    pointer = registry.current()
    if pointer is None:
        raise RegistryError(f"model registry {registry.root} has no current version; promote one "
                                "(amsrm registry add DIR --promote) or set AMSRM_MODEL_SOURCE=path")
    scorer = build(registry.load(pointer.version, pointer.manifest_sha256))
    log.info("serving model version %s (%s) from %s", pointer.version, scorer.version, registry.root)
    return scorer, ModelWatcher(registry, build, poll_s, pointer)
