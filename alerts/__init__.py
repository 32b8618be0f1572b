"""Alerts: the signal a rule raises and the alert store that keeps one open alert per rule and
subject, with its lifecycle (open → acknowledged → resolved).
"""
