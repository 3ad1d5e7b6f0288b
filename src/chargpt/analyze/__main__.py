"""Size up GPT configs: parameters by component, tied and untied; training memory; attention memory.

    python -m chargpt.analyze                                   # every size preset
    python -m chargpt.analyze model/size=medium model.tie_weights=false data.batch_size=64
    python -m chargpt.analyze model/size=tiny,large trainer.precision=bf16-mixed --out figures

Overrides are run.py's. Without `model/size=` every preset is analysed, unless the overrides set
the dimensions (model.d_model, model.n_layer, model.n_head) or pick an experiment: then the one
config they describe. The vocabulary is 65 (tiny-shakespeare) unless model.vocab_size=N; no data is
read. Memory is for the composed data.batch_size, model.block_size and trainer.precision (32-true
or bf16-mixed). Prints the tables and writes parameters.png, memory.png, attention_memory.png,
summary.md and summary.json into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console

from chargpt.analyze.estimates import precision_of
from chargpt.analyze.plots import write_plots
from chargpt.analyze.report import all_tables, analyze_config, markdown_report, to_json
from chargpt.cli import print_table, run_command, wide_console
from chargpt.errors import OneLineArgumentParser, SettingError
from chargpt.model import GPTConfig
from chargpt.runs import renamed
from chargpt.runs.compose import CONF_DIR
from chargpt.training.precision import resolve_precision, trains_on_cpu

PROG = "chargpt.analyze"
DEFAULT_VOCAB_SIZE = 65  # tiny-shakespeare's characters
DEFAULT_CONTEXTS = [2**k for k in range(4, 14)]  # 16 … 8192
# Overrides that describe one config by themselves, so that analysing every preset makes no sense.
SINGLE_CONFIG_KEYS = ("experiment", "model.d_model", "model.n_layer", "model.n_head")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = OneLineArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for run.py")
    parser.add_argument("--out", type=Path, default=Path("analysis"), help="output folder")
    parser.add_argument(
        "--contexts",
        type=_context_list,
        default=DEFAULT_CONTEXTS,
        help="context lengths for the attention table and plot, e.g. 64,256,1024",
    )
    parser.add_argument(
        "--config-dir", type=Path, default=CONF_DIR, help="the Hydra conf folder to compose"
    )
    return parser.parse_intermixed_args(argv)


def _context_list(text: str) -> list[int]:
    try:
        contexts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if any(t <= 0 for t in contexts):
        raise argparse.ArgumentTypeError(f"{text!r}: context lengths must be positive")
    return contexts


@dataclass(frozen=True)
class Setup:
    """One config to analyse, as composed from the overrides."""

    name: str
    model: GPTConfig
    batch_size: int
    precision: str
    optimizer: str = "adamw"


def compose_setups(overrides: list[str], conf_dir: Path) -> list[Setup]:
    if not (conf_dir / "train.yaml").is_file():
        raise SettingError(f"{conf_dir}: no train.yaml; pass the project's conf folder")
    renamed.check_overrides(overrides)  # one line naming the new key, not Hydra's error
    names, rest = _size_choices(overrides, conf_dir)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
        setups = [
            _setup(name or _single_name(rest), compose("train", overrides=_with_size(rest, name)))
            for name in names
        ]
    if not any(o.startswith("model/size=") for o in overrides):
        setups.sort(key=lambda s: (s.model.d_model, s.model.n_layer))  # presets, smallest first
    return setups


def _size_choices(overrides: list[str], conf_dir: Path) -> tuple[list[str | None], list[str]]:
    """The presets to analyse (None: the config as composed) and the other overrides."""
    presets = sorted(p.stem for p in (conf_dir / "model" / "size").glob("*.yaml"))
    sizes = [o.partition("=")[2] for o in overrides if o.startswith("model/size=")]
    rest = [o for o in overrides if not o.startswith("model/size=")]
    if not sizes:
        picks_one = any(_key(o) in SINGLE_CONFIG_KEYS for o in rest)
        return ([None] if picks_one else presets), rest
    names = [name for value in sizes for name in value.split(",")]
    for name in names:
        if name not in presets:
            raise SettingError(
                f"model/size={name}: unknown preset; choose from {', '.join(presets)}"
            )
    return names, rest


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def _single_name(overrides: list[str]) -> str:
    experiments = [o.partition("=")[2] for o in overrides if _key(o) == "experiment"]
    return experiments[-1] if experiments else "custom"


def _with_size(overrides: list[str], name: str | None) -> list[str]:
    return overrides if name is None else [*overrides, f"model/size={name}"]


def _setup(name: str, cfg: DictConfig) -> Setup:
    renamed.check_config(cfg)  # an old key in conf/local or an experiment file
    if OmegaConf.is_missing(cfg.model, "vocab_size"):
        with open_dict(cfg):
            cfg.model.vocab_size = DEFAULT_VOCAB_SIZE
    batch_size = cfg.data.batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise SettingError(f"data.batch_size={batch_size!r}: must be a positive integer")
    model = instantiate(cfg.model)  # validates every model setting
    resolve_precision(cfg.trainer)  # auto, as a run on this machine would resolve it
    on_cpu = trains_on_cpu(cfg.trainer.get("accelerator", "auto"))
    optimizer = instantiate(cfg.optimizer)  # validates the optimizer settings
    precision = precision_of(cfg.trainer.precision, on_cpu).name
    return Setup(name, model, batch_size, precision, optimizer.algorithm)


def run(args: argparse.Namespace, console: Console) -> None:
    setups = compose_setups(args.overrides, args.config_dir)
    contexts = sorted({*args.contexts, *(s.model.block_size for s in setups)})
    analyses = [
        analyze_config(s.name, s.model, s.batch_size, s.precision, contexts, s.optimizer)
        for s in setups
    ]
    tables = all_tables(analyses)
    for table in tables:
        print_table(table, console)
    args.out.mkdir(parents=True, exist_ok=True)
    images = write_plots(analyses, args.out)
    (args.out / "summary.md").write_text(
        markdown_report(tables, [p.name for p in images]), encoding="utf-8"
    )
    (args.out / "summary.json").write_text(json.dumps(to_json(analyses), indent=2) + "\n")
    written = ", ".join([*(p.name for p in images), "summary.md", "summary.json"])
    console.print(f"Wrote {written} to {args.out}")


def main(argv: list[str] | None = None) -> int:
    return run_command(
        PROG, lambda arguments: run(parse_args(arguments), wide_console()), argv, config_errors=True
    )


if __name__ == "__main__":
    sys.exit(main())
