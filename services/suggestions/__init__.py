"""Suggestions service: Deputies' suggestions (代表建议) through assignment, reply, evaluation and yearly look-back."""
