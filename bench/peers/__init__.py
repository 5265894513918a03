"""Peers the hub is measured against in the same run (bench/nodered_vs_hub.py)."""
