"""The run folder and what is in it, read and written in one place.

- `layout`: every file name in a run folder and a sweep folder
- `files`: atomic writes and the folder's lock
- `record`: run.json and summary.csv, from ONE list of result fields (`Results`)
- `read`: a run folder read back (for compare)
- `checkpoint`: a .ckpt validated and loaded without Lightning
- `compose`, `sweep`: the run config as run.py composes it; a sweep's jobs
- `resume`, `renamed`: `ckpt_path=last|PATH` and the keys that moved
- `launch`: Hydra callbacks around a launch (writable folders, the sweep report, clean-up)
"""
