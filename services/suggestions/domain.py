"""Domain rules of the suggestions service: plain functions, no I/O."""
