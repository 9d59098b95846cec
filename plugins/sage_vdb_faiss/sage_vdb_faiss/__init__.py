"""SAGE vector search service on FAISS (backend ``faiss`` of kind ``vdb``).

``VDBService`` implements :class:`sage_core.plugin.VectorStore`; the plugin module registers it with
SAGE through the ``sage`` entry point group::

    from sage_vdb_faiss import VDBService
    env.register_service("vdb_service", lambda: VDBService())
"""

from sage_vdb_faiss.config import FaissConfig, FaissOptions
from sage_vdb_faiss.devices import gpu_count
from sage_vdb_faiss.service import VDBService

__all__ = ["FaissConfig", "FaissOptions", "VDBService", "gpu_count"]
