"""The reference analysis as a library call (filled in by the next commit)."""
