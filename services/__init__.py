"""Minyi's services."""

import shared  # noqa: F401  (its import settles the threads of numpy's BLAS first)
