"""Domain rules of the identity service: plain functions, no I/O."""
