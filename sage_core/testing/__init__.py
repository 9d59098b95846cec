"""Test kit for plugin authors: pytest contract suites, one per service contract.

A backend proves it honours its contract by subclassing the suite in its own tests and defining
one fixture. Stateful stores name a *factory* (the suite needs fresh empty stores, and closes each
after the test); expensive stateless models name the *instance* (any fixture scope; not closed)::

    import pytest
    from sage_core.testing import VectorStoreContract

    class TestMyStore(VectorStoreContract):
        dim = 16                     # vectors the suite adds have this dimension
        exact = False                # an approximate index...
        min_recall = 0.95            # ...declares its recall@10 against brute force at 5,000 vectors

        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: MyStore(dim=self.dim)

==========================  =======================  ===============================
suite                       fixture to define        returns
==========================  =======================  ===============================
``VectorStoreContract``     ``make_store``           factory of empty vector stores
``KVStoreContract``         ``make_kv``              factory of empty KV stores
``GraphStoreContract``      ``make_graph``           factory of empty graph stores
``MemoryContract``          ``make_memory``          factory of empty memories
``EmbedderContract``        ``embedder``             a ready embedder
``LLMContract``             ``llm``                  a ready model
==========================  =======================  ===============================

A slow model can be shared by a class-scoped fixture (pytest wants it a classmethod)::

    class TestMyEmbedder(EmbedderContract):
        @pytest.fixture(scope="class")
        @classmethod
        def embedder(cls):
            return MyEmbedder()

Backend methods may be sync, ``async def`` or async generators: the suites call them through
:func:`call` / :func:`drain`, which await coroutines on one event loop kept for the whole session.
Class attributes tune a suite: ``VectorStoreContract.dim``, ``.exact`` (``False`` for an approximate
index, which then declares the recall@10 it promises in ``.min_recall``) and ``.score_atol``;
``EmbedderContract.atol`` and ``.large_batch``; ``LLMContract.sampling``. A known defect is marked
by overriding its one test with ``@pytest.mark.xfail(strict=True, reason=...)`` calling ``super()``.

Beyond the basics on a few items, each store suite checks 5,000 items against a reference (brute
force, a dict, a breadth-first search), result order and the score scale, every filter the
contract defines, deletes and overwrites, eight threads writing and reading at once (no lost write,
no torn read, no exception), save/load and a save crashed at a dozen points (the previous snapshot
must still load), and bad input (``ValueError``). Each check is what a docstring of
:mod:`sage_core.services.contracts` promises. A suite takes 1 to 6 seconds a backend on two idle
cores (the built-in and FAISS stores; 16 s for the slowest with the machine four times
oversubscribed); every test has a ``pytest-timeout`` limit.
"""

from sage_core.testing._calls import call, drain, session_loop
from sage_core.testing.embedder import EmbedderContract
from sage_core.testing.graph_store import GraphStoreContract
from sage_core.testing.kv_store import KVStoreContract
from sage_core.testing.llm import LLMContract
from sage_core.testing.memory import MemoryContract
from sage_core.testing.vector_store import VectorStoreContract, unit_vectors

__all__ = [
    "EmbedderContract",
    "GraphStoreContract",
    "KVStoreContract",
    "LLMContract",
    "MemoryContract",
    "VectorStoreContract",
    "call",
    "drain",
    "session_loop",
    "unit_vectors",
]
