"""Lightning callbacks of a training run; conf/callbacks/default.yaml turns them on.

- `samples`: text samples at each validation
- `checkpoints`: resumable checkpoints, a validation at the last step
- `throughput`: training tokens per second
- `safety`: stop on a NaN or infinite loss
- `interrupt`: Ctrl+C and SIGTERM save a checkpoint and stop
"""
