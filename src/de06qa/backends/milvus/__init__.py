"""The Milvus backend: the whole index lives in Milvus, so serving processes are stateless replicas.
pymilvus is imported by common.py alone. One client API for Milvus Lite (a local file), a standalone
server and a cluster, chosen by URI.

An index named NAME is a few collections:
  NAME_meta              pointer rows: "current" (the live generation and the build's manifest),
                         "lock" (the build writing now)
  NAME_<time>            chunks: both BM25 fields (our own tokens, Milvus's BM25), the vector,
                         provinces and date for filters, and everything ranking and answers read
                         (text, offsets, sentence spans and vectors, the article's metadata)
  NAME_<time>_docs       article texts (in parts under Milvus's 64 KB VARCHAR) for /documents
  NAME_<time>_terms      document frequency of each folded term (features weigh terms by idf)

A rebuild writes a new generation and then moves the "current" pointer: one row upserted, so
readers switch at once (Milvus Lite implements no aliases; this works on Lite, a server and a
cluster alike). An update with the same model and settings changes the live generation in place
by content hash: new and changed articles' chunks upserted, vanished ones deleted.
"""

from __future__ import annotations

from de06qa.backends.milvus.common import ChunkRow
from de06qa.backends.milvus.index import MilvusIndex
from de06qa.backends.milvus.reading import MilvusBackend, _expr

__all__ = ["ChunkRow", "MilvusBackend", "MilvusIndex", "_expr"]
