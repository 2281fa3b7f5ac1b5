"""Domain rules of the routing service: plain functions, no I/O."""
