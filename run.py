"""Train a character-level GPT: `python run.py [overrides]`, or `python run.py -m` for a sweep.

The same command as `chargpt-train` (chargpt.train.main), which works from any directory.
"""

from chargpt.train import main

if __name__ == "__main__":
    main()
