"""`python -m chargpt.train [overrides]`: the train command (printed hints use it where no
`chargpt-train` script is installed)."""

from chargpt.train import main

main()
