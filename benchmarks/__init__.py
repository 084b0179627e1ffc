"""The throughput benchmark (throughput.py) and its parts."""
