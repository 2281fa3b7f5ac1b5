"""Routing service: Classification of reports, dispatch to grid-governance platforms (基层治理四平台,
12345) and hotspots (共性事项).
"""
