"""de06qa — retrieval-based question answering over Vietnamese news about "Đề án 06"."""

__version__ = "0.1.0"
