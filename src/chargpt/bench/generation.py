"""Generation speed with and without the KV cache, printed as a markdown table.

    python -m chargpt.bench generate --size small --block-size 256 --new-tokens 255 500
    python -m chargpt.bench generate --variant n_kv_head=8 --variant n_kv_head=1 --batch-size 32

Past block_size the model keeps a window of the sequence (SamplingConfig's `window`): under "slide"
every new token moves it, so the cache must be refilled each token; under "halve" it is refilled
once per half window. Each window is timed with and without the cache. A randomly initialised
model (speed does not depend on the weights) samples from a short prompt with a fixed seed.
Cached and uncached runs alternate, so that load from other processes on the machine slows both
alike; the table gives the median of the repeats and the ratio of the medians. With `--variant`
(model settings, e.g. `n_kv_head=1,qk_norm=true`, repeatable) each variant is a model of its own,
and the repeats alternate between the variants too; the table adds each one's KV cache size.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from omegaconf import OmegaConf

from chargpt.bench.hardware import synchronize
from chargpt.cli import Table, format_bytes, to_markdown
from chargpt.errors import SettingError
from chargpt.model import GPT, GPTConfig
from chargpt.model.kv_cache import KVCache
from chargpt.model.parameters import num_parameters
from chargpt.model.sampling import WINDOWS, SamplingConfig
from chargpt.runs.compose import CONF_DIR

SIZE_PRESETS = CONF_DIR / "model" / "size"


@dataclass
class Measurement:
    """Timings of one generation length: tokens per second of each repeat, in run order."""

    variant: str
    kv_cache_bytes: int  # what generation's KV cache allocates for this batch
    window: str
    new_tokens: int
    cached_tokens_per_s: list[float]
    uncached_tokens_per_s: list[float]
    same_tokens: bool  # cached and uncached runs sampled identical sequences

    @property
    def speedup(self) -> float:
        return statistics.median(self.cached_tokens_per_s) / statistics.median(
            self.uncached_tokens_per_s
        )


def load_preset(size: str, presets_dir: Path = SIZE_PRESETS) -> dict[str, int]:
    """The dimensions a size preset (conf/model/size/<size>.yaml) sets."""
    path = presets_dir / f"{size}.yaml"
    if not path.is_file():
        names = ", ".join(sorted(p.stem for p in presets_dir.glob("*.yaml")))
        raise SettingError(f"size={size!r}: no {path}; presets: {names}")
    return dict(OmegaConf.to_container(OmegaConf.load(path)))


def timed_generation(
    model: GPT, prompt: torch.Tensor, new_tokens: int, use_cache: bool, window: str, seed: int
) -> tuple[float, torch.Tensor]:
    """Seconds taken to sample `new_tokens` after `prompt`, and the tokens sampled."""
    # Plain sampling at temperature 1: speed depends on neither the filters nor the weights.
    sampling = SamplingConfig(max_new_tokens=new_tokens, temperature=1.0, window=window)
    generator = torch.Generator(device=prompt.device).manual_seed(seed)
    start = time.perf_counter()
    out = model.generate(prompt, sampling, generator=generator, use_cache=use_cache)
    synchronize(out.device)  # kernels run asynchronously: wait for the last one
    return time.perf_counter() - start, out


def measure(
    models: dict[str, GPT],
    prompt: torch.Tensor,
    new_tokens: int,
    repeats: int,
    window: str = "slide",
) -> list[Measurement]:
    """Alternate cached and uncached runs of every model `repeats` times each; tokens/s counts
    the whole batch."""
    for model in models.values():
        for use_cache in (True, False):  # warm-up
            timed_generation(model, prompt, min(new_tokens, 8), use_cache, window, seed=0)
    speeds = {(name, c): [] for name in models for c in (True, False)}
    outputs: dict[tuple[str, bool], torch.Tensor] = {}
    for _ in range(repeats):
        for name, model in models.items():
            for use_cache in (True, False):
                seconds, outputs[name, use_cache] = timed_generation(
                    model, prompt, new_tokens, use_cache, window, seed=0
                )
                speeds[name, use_cache].append(prompt.size(0) * new_tokens / seconds)
    return [
        Measurement(
            name,
            KVCache(model.config, prompt.size(0), "meta", model.head.weight.dtype).nbytes,
            window,
            new_tokens,
            speeds[name, True],
            speeds[name, False],
            torch.equal(outputs[name, True], outputs[name, False]),
        )
        for name, model in models.items()
    ]


COLUMNS = [
    "variant",
    "KV cache",
    "window",
    "new tokens",
    "cached tok/s (median)",
    "uncached tok/s (median)",
    "speedup",
    "same tokens",
]


def speed_table(measurements: list[Measurement]) -> Table:
    rows = [
        [
            m.variant,
            format_bytes(m.kv_cache_bytes),
            m.window,
            str(m.new_tokens),
            f"{statistics.median(m.cached_tokens_per_s):.1f}",
            f"{statistics.median(m.uncached_tokens_per_s):.1f}",
            f"{m.speedup:.2f}x",
            "yes" if m.same_tokens else "no",
        ]
        for m in measurements
    ]
    return Table(COLUMNS, rows, right=[COLUMNS[1], *COLUMNS[3:7]])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m chargpt.bench generate", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--size", default="small", help="preset in conf/model/size (default small)")
    parser.add_argument("--block-size", type=int, default=256, help="context length")
    parser.add_argument("--new-tokens", type=int, nargs="+", default=[500])
    parser.add_argument(
        "--windows",
        nargs="+",
        choices=WINDOWS,
        default=list(WINDOWS),
        help="what generation keeps past block_size (default: both)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="KEY=VALUE[,KEY=VALUE...]",
        help="model settings on top of the preset (repeat to compare variants side by side)",
    )
    parser.add_argument("--prompt-length", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=65, help="65: tiny-shakespeare")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind, interleaved")
    # One thread: a one-token step is too small to split, and on a machine shared with other
    # processes idle-spinning worker threads made every run over ten times slower.
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args(argv)


def variant_settings(text: str) -> dict[str, object]:
    """`n_kv_head=1,qk_norm=true` as GPTConfig keyword arguments (values read as YAML)."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or not all("=" in item for item in items):
        raise SettingError(f"--variant {text!r}: must be KEY=VALUE[,KEY=VALUE...]")
    settings = dict(OmegaConf.to_container(OmegaConf.from_dotlist(items)))
    allowed = {f.name for f in fields(GPTConfig)} - {"vocab_size", "block_size"}
    for key in settings:
        if key not in allowed:
            raise SettingError(
                f"--variant {text!r}: {key!r} is not a model setting a variant may change "
                f"(one of {', '.join(sorted(allowed))}; --vocab-size and --block-size are "
                "shared by all)"
            )
    return settings


def build_models(args: argparse.Namespace) -> dict[str, GPT]:
    """One randomly initialised model per variant (the preset alone without --variant)."""
    base = dict(vocab_size=args.vocab_size, block_size=args.block_size) | load_preset(args.size)
    models = {}
    if args.variant and len(set(args.variant)) < len(args.variant):
        raise SettingError(f"--variant: {args.variant} names a variant twice")
    for text in args.variant or [""]:
        settings = variant_settings(text) if text else {}
        torch.manual_seed(0)
        models[text or args.size] = GPT(GPTConfig(**(base | settings))).to(args.device).eval()
    return models


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    models = build_models(args)
    config = next(iter(models.values())).config
    prompt = torch.randint(0, config.vocab_size, (args.batch_size, args.prompt_length))
    prompt = prompt.to(args.device)
    measurements = [
        m
        for window in args.windows
        for n in args.new_tokens
        for m in measure(models, prompt, n, args.repeats, window)
    ]
    counts = ", ".join(f"{num_parameters(m):,}" for m in models.values())
    print(
        f"{args.size} preset ({counts} parameters), block_size "
        f"{config.block_size}, prompt {args.prompt_length} token(s), batch {args.batch_size}, "
        f"{args.device}, {torch.get_num_threads()} thread(s), {args.repeats} repeats "
        "interleaved (cached, uncached, ...)\n"
    )
    print(to_markdown(speed_table(measurements)))
    if args.json is not None:
        report = {
            "settings": vars(args) | {"json": str(args.json)},
            "model": config.to_dict(),
            "models": {name: m.config.to_dict() for name, m in models.items()},
            "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "results": [asdict(m) | {"speedup": m.speedup} for m in measurements],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
