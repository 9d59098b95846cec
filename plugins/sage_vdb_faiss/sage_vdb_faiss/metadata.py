"""Which rows match a metadata filter: core's :class:`sage_core.plugin.MetadataIndex`, kept beside the vectors.

The built-in numpy store uses the same index, so a fallback chain from this store to numpy answers a
filter with the same rows (equality as Python's, a list value meaning "one of").
"""

from __future__ import annotations

from sage_core.plugin import MetadataIndex

__all__ = ["MetadataIndex"]
