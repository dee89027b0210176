"""Other tools' task files, read and written (pure: parsing, mapping, serialising; no I/O)."""
