"""Load a pipeline file for serving: run it until it submits its job, keep its environment."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

from sage_core.cli import GraphCaptured, capture_submit
from sage_core.serving import ServingPlan, serving_plan


class NotServable(Exception):
    """The file does not define a servable pipeline; the message says what to add."""


def load_served(path: str | Path) -> tuple[Any, ServingPlan]:
    """Run ``path`` as ``__main__`` until its ``env.submit()``; its environment and serving plan.

    The file's own directory is importable (as when running ``python FILE.py``).
    """
    path = Path(path).resolve()
    sys.argv = [str(path)]
    sys.path.insert(0, str(path.parent))
    try:
        with capture_submit():
            runpy.run_path(str(path), run_name="__main__")
    except GraphCaptured as captured:
        env = captured.env
    else:
        msg = f"{path} never called env.submit(): build the pipeline, then call env.submit() at the end of the file"
        raise NotServable(msg)
    plan = serving_plan(env)  # type: ignore[arg-type]
    if not plan.endpoints:
        msg = (
            f"{path}: environment {env.name!r} serves no model; add `chat = ChatEndpoint(env, \"name\")` "  # type: ignore[attr-defined]
            f"(from sage_core), start the pipeline with chat.requests() and end it with .sink(chat.replies())"
        )
        raise NotServable(msg)
    return env, plan


__all__ = ["NotServable", "load_served"]
