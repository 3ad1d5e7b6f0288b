"""The layering the tree shows: library packages below, commands on top.

commands   train, sample, compare/, analyze/, bench/, cli     (import anything below)
training   the LightningModule, optimizer, loggers, callbacks, the Trainer builder
runs       the run folder: its layout, files, record, checkpoints, resume
model, data                                                    (plain PyTorch; data's
           datamodule is Lightning's)
errors     the project's error types
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "chargpt"
COMMANDS = ("train", "sample", "compare", "analyze", "bench", "cli")  # cli: what they share
# What each library package may import from the project (errors is below them all).
MAY_IMPORT = {
    "model": {"model"},
    "data": {"data"},
    "runs": {"runs", "model", "data"},
    "training": {"training", "runs", "model", "data"},
}


def project_imports(path: Path, package: str = "chargpt") -> set[str]:
    """The chargpt modules a file imports, at its top or inside functions.

    `package` is the file's own package (`chargpt.model`), against which relative imports
    (`from ..train import x`) resolve.
    """
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            names.add(".".join([*base, *([node.module] if node.module else [])]))
    return {name for name in names if name.split(".")[0] == "chargpt"}


def package_of(path: Path) -> str:
    return ".".join(["chargpt", *path.parent.relative_to(PACKAGE).parts])


def library_files(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_library_packages_import_no_command_and_nothing_above_them(package):
    for path in library_files(package):
        for module in project_imports(path, package_of(path)):
            top = module.split(".")[1] if "." in module else ""
            assert top not in COMMANDS, f"{path.relative_to(PACKAGE)} imports the command {module}"
            assert top in MAY_IMPORT[package] | {"errors"}, (
                f"{path.relative_to(PACKAGE)} imports {module}, above the {package} layer"
            )


def test_the_layering_check_sees_a_command_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from chargpt.train import run_job\n")
    assert project_imports(bad) == {"chargpt.train"}
    bad.write_text("from ..train import run_job\nfrom . import gpt\n")
    assert project_imports(bad, "chargpt.model") == {"chargpt.train", "chargpt.model"}


def test_every_module_is_a_command_or_in_a_library_package():
    tops = {path.stem if path.is_file() else path.name for path in PACKAGE.iterdir()}
    tops -= {"__init__", "__pycache__", "errors"}
    assert tops == set(COMMANDS) | set(MAY_IMPORT)


def test_model_imports_neither_lightning_nor_hydra():
    code = (
        "import sys\n"
        "import chargpt.model, chargpt.model.sampling, chargpt.data.tokenizer\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'pytorch_lightning', 'hydra', 'omegaconf'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checkpoints_load_without_lightning_or_hydra():
    code = (
        "import sys\n"
        "import chargpt.runs.checkpoint\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'pytorch_lightning', 'hydra'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_package_folder_is_a_regular_package():
    """setuptools' find_packages skips a folder without __init__.py: a wheel would lack it."""
    folders = {path.parent for path in PACKAGE.rglob("*.py")}
    missing = sorted(
        str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").exists()
    )
    assert not missing
