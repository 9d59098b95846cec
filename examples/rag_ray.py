"""The RAG demo on Ray: the same flow, services and ``--out`` file, in a ``RemoteEnvironment``.

    python3 examples/rag_ray.py --out ray.json                    # examples/rag_gpu_ray.yaml, local Ray
    python3 examples/rag_demo.py --config examples/rag_gpu_ray.yaml --out local.json
    python3 examples/rag/compare.py local.json ray.json            # the same sources per question

Every flag of ``examples/rag_demo.py`` works here (``--config`` defaults to ``examples/rag_gpu_ray.yaml``,
where the vdb and llm services reserve ``resources: {num_gpus: 1}``, so Ray gives each replica actor
a GPU of its own); ``--address`` joins a running Ray cluster instead of starting a local instance.
The demo's ``run_demo`` runs unchanged on a ``rag.runtimes.RayRuntime``: its environment is a
``RemoteEnvironment`` and answers come back to this process through a Ray queue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))

import rag_demo  # noqa: E402
from rag.runtimes import RayRuntime  # noqa: E402

RAY_CONFIG = EXAMPLES / "rag_gpu_ray.yaml"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, str | None]:
    """The demo's arguments (``--config`` defaulting to the Ray config) and the Ray ``--address``."""
    own = argparse.ArgumentParser(add_help=False)
    own.add_argument("--address", default=None, help="a Ray cluster to join (default: start a local instance)")
    known, rest = own.parse_known_args(argv if argv is not None else sys.argv[1:])
    return rag_demo.parse_args(["--config", str(RAY_CONFIG), *rest]), known.address


def main(argv: list[str] | None = None) -> int:
    """Run the demo on Ray; exit status 1 when a question failed."""
    args, address = parse_args(argv)
    rag_demo.quiet_logs(args.verbose)
    console = rag_demo.Console()
    figures = rag_demo.run_demo(args, console, RayRuntime(address))
    return 1 if figures.failed or figures.questions < figures.asked else 0


if __name__ == "__main__":  # vLLM starts its engine in child processes that import this module
    sys.exit(main())
