"""Domain rules of the scoring service: plain functions, no I/O."""
