"""Scoring service: deputies' performance points (履职积分), stars and rankings;
the handling units' board (红黄黑榜).
"""
