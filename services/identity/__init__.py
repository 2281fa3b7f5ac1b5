"""Identity service: Directory of regions, stations and deputies, QR codes (亮码), registry feeds and
voter-roll reconciliation.
"""
