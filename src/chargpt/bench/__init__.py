"""Speed measurements that print figures (never timed tests): `python -m chargpt.bench`.

    python -m chargpt.bench [train] OVERRIDES    training speed, memory, FLOPs/token and MFU
    python -m chargpt.bench overhead OVERRIDES   Lightning Trainer vs a plain loop, one process
    python -m chargpt.bench generate ...         sampling with and without the KV cache

Results and the commands that made them are kept in benchmarks/README.md.
"""
