"""Alerts: named rules, the alert lifecycle (open → acknowledged → resolved), notifiers."""
