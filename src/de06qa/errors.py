"""Typed exceptions. Every message says what the user can do about it."""


class De06qaError(Exception):
    """Base class: a user-facing problem with a one-line, actionable message."""


class SourceNotFound(De06qaError):
    """The folder of articles to index does not exist or cannot be read."""


class IndexMissing(De06qaError):
    """No index at the given folder."""


class IndexIncompatible(De06qaError):
    """The index was built with another model, format version or segmenter."""


class IndexDamaged(De06qaError):
    """A file of the index is missing or truncated."""


class IndexUnwritable(De06qaError):
    """The index folder cannot be written: a full disk, a read-only or missing place."""


class IndexBusy(De06qaError):
    """Another build holds the lock on the index folder."""


class ModelUnavailable(De06qaError):
    """The embedding model cannot be loaded (not installed, not cached, offline)."""


class BadQuery(De06qaError):
    """The question is empty, too long or otherwise unusable."""


class UnknownDocument(De06qaError):
    """No article with that doc_id in the index."""


class NothingToIndex(De06qaError):
    """The source folder holds no readable article (empty, or every file was skipped)."""


class BackendUnavailable(De06qaError):
    """The search backend's server (Milvus) cannot be reached or answered with an error."""


class ClusterUnavailable(De06qaError):
    """The Dask scheduler cannot be reached, or a worker failed."""


class CannotSave(De06qaError):
    """A fetched page cannot be written (a read-only folder, a full disk)."""
