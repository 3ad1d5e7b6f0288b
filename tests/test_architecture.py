"""Pure modules (model, tokenizer, sampling, checkpoints) know nothing of Lightning or Hydra."""

import subprocess
import sys

PURE_MODULES = ["chargpt.model", "chargpt.data", "chargpt.checkpoint", "chargpt.generate"]


def test_pure_modules_import_neither_lightning_nor_hydra():
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in PURE_MODULES)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'pytorch_lightning', 'hydra'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
