"""Where the demo's flow runs: this process (threads) or Ray (actors). The flow's code is the same.

A runtime makes the environment and carries the answers back to the console: locally the sink calls
the console's reporter directly; on Ray the sink runs in an actor, so it puts each answer on a Ray
queue that a thread of this process drains into the reporter.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from pathlib import Path
from typing import Any, Iterator

from rag.pipeline import AnswerListener, Exchange

EXAMPLES = Path(__file__).resolve().parent.parent


class LocalRuntime:
    """Threads of this process (``LocalEnvironment``)."""

    def environment(self, name: str, config: Any) -> Any:
        """A ``LocalEnvironment``."""
        from sage_core import LocalEnvironment

        return LocalEnvironment(name, config=config)

    @contextlib.contextmanager
    def listener(self, listener: AnswerListener) -> Iterator[AnswerListener]:
        """The reporter itself: the sink runs in this process."""
        yield listener


class RayRuntime:
    """Ray actors (``RemoteEnvironment``); ``address`` joins a cluster, ``None`` starts a local Ray."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        # Ray's workers import the flow's functions (rag.pipeline) by name: show them this directory.
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))

    def environment(self, name: str, config: Any) -> Any:
        """A ``RemoteEnvironment`` on Ray."""
        from sage_core import RemoteEnvironment

        return RemoteEnvironment(name, address=self.address, config=config)

    @contextlib.contextmanager
    def listener(self, listener: AnswerListener) -> Iterator[AnswerListener]:
        """A picklable listener that relays answers through a Ray queue to ``listener`` here."""
        from ray.util.queue import Empty, Queue

        answers = Queue()
        done = threading.Event()

        def drain() -> None:
            while not (done.is_set() and answers.empty()):
                try:
                    listener.answered(answers.get(timeout=0.1))
                except (Empty, queue.Empty):
                    continue

        thread = threading.Thread(target=drain, name="rag-answers", daemon=True)
        thread.start()
        try:
            yield QueueListener(answers)
        finally:
            done.set()
            thread.join()
            answers.shutdown()


class QueueListener:
    """Puts every answered exchange on a Ray queue (it travels to the sink's actor)."""

    def __init__(self, answers: Any) -> None:
        self.answers = answers

    def answered(self, exchange: Exchange) -> None:
        """Send the exchange to the driver."""
        self.answers.put(exchange)
