"""Domain rules of the intake service: plain functions, no I/O."""
