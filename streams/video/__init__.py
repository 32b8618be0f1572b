"""The video part: the video rules over frame metrics, statuses and reads (rules.py) and their
stream processor (processor.py)."""
