"""The RAG demo on Ray: the same flow, services and ``--out`` file, in a ``RemoteEnvironment``.

    python3 examples/rag_ray.py --out ray.json                    # examples/rag_gpu_ray.yaml, local Ray
    python3 examples/rag_demo.py --config examples/rag_gpu_ray.yaml --out local.json
    python3 examples/rag/compare.py local.json ray.json            # the same sources per question

Every flag of ``examples/rag_demo.py`` works here (``--config`` defaults to ``examples/rag_gpu_ray.yaml``,
where the vdb and llm services reserve ``resources: {num_gpus: 1}``, so Ray gives each replica actor
a GPU of its own); ``--address`` joins a running Ray cluster instead of starting a local instance.
The demo's ``run_demo`` runs unchanged: only the environment it builds is a ``RemoteEnvironment``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))

import rag_demo  # noqa: E402

RAY_CONFIG = EXAMPLES / "rag_gpu_ray.yaml"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, str | None]:
    """The demo's arguments (``--config`` defaulting to the Ray config) and the Ray ``--address``."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--address", default=None, help="a Ray cluster to join (default: start a local instance)")
    known, rest = own.parse_known_args(argv if argv is not None else sys.argv[1:])
    return rag_demo.parse_args(["--config", str(RAY_CONFIG), *rest]), known.address


@contextlib.contextmanager
def environments_on_ray(address: str | None) -> Iterator[None]:
    """While open, ``sage_core.LocalEnvironment(name, config=...)`` (what ``run_demo`` builds) makes a
    ``RemoteEnvironment`` on Ray instead; restored on exit."""
    import sage_core
    from sage_core.api.remote_environment import RemoteEnvironment

    # Ray's workers import the flow's functions (rag.pipeline) by name: show them this directory.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))

    def remote(name: str, config: Any = None) -> RemoteEnvironment:
        return RemoteEnvironment(name, address=address, config=config)

    local = sage_core.LocalEnvironment
    sage_core.LocalEnvironment = remote  # type: ignore[assignment]
    try:
        yield
    finally:
        sage_core.LocalEnvironment = local  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> int:
    """Run the demo on Ray; exit status 1 when a question failed."""
    args, address = parse_args(argv)
    rag_demo.quiet_logs(args.verbose)
    console = rag_demo.Console()
    with environments_on_ray(address):
        figures = rag_demo.run_demo(args, console)
    return 1 if figures.failed or figures.questions < figures.asked else 0


if __name__ == "__main__":  # vLLM starts its engine in child processes that import this module
    sys.exit(main())
