"""Intake service: Citizens' reports (群众意见) from every channel: receipts, the 2/7 working-day
clocks, replies and ratings.
"""
