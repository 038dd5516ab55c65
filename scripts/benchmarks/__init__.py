"""The measurements `scripts/bench.py` runs and tabulates, by the part of the system
they load."""
