"""Dataset preparation: raw HAR datasets -> 20 Hz, 120-sample windows (see prepare.py)."""
