"""Peak memory of reading a big corpus: `CharDataModule.setup("fit")` on a file of --size-mb.

    python benchmarks/corpus_memory.py --size-mb 1024

Builds the corpus by repeating --source into a temporary file, then measures in fresh
subprocesses, so each peak RSS is that process's alone: one that only imports the DataModule
(the baseline), one that sets up a 64 KiB corpus (the fixed cost of the code path), and one that
sets up the big corpus and builds the val/test loaders. The difference between the first and the
last peak is what reading and encoding the corpus cost. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SOURCE_NAME = "tinyshakespeare.txt"
SMALL_BYTES = 64 * 1024

# Run in the subprocess: argv = [module, path or "", block_size]. Prints one JSON line.
CHILD = """
import importlib, json, resource, sys, time
started = time.perf_counter()
module = importlib.import_module(sys.argv[1])
figures = {"import_s": time.perf_counter() - started}
def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
figures["import_peak_kib"] = peak_kib()
if sys.argv[2]:
    datamodule = module.CharDataModule(corpus=None, path=sys.argv[2], block_size=int(sys.argv[3]))
    started, cpu = time.perf_counter(), time.process_time()
    datamodule.setup("fit")
    figures["setup_s"] = time.perf_counter() - started
    figures["setup_cpu_s"] = time.process_time() - cpu
    figures["setup_peak_kib"] = peak_kib()
    tokens = datamodule.train_tokens, datamodule.val_tokens, datamodule.test_tokens
    figures["characters"] = sum(len(t) for t in tokens)
    figures["token_bytes"] = sum(t.numel() * t.element_size() for t in tokens)
    figures["dtype"] = str(tokens[0].dtype)
    started = time.perf_counter()
    for loader in (datamodule.val_dataloader(), datamodule.test_dataloader()):
        next(iter(loader))
    figures["loaders_s"] = time.perf_counter() - started
    figures["loaders_peak_kib"] = peak_kib()
print(json.dumps(figures))
"""


def default_source() -> Path:
    """tiny-shakespeare where run.py looks for it, else the shared copy beside the checkout."""
    data_dir = Path(os.environ.get("CHARGPT_DATA_DIR", PROJECT_ROOT / "data"))
    for directory in (data_dir, PROJECT_ROOT.parent / "shared" / "data"):
        if (directory / SOURCE_NAME).is_file():
            return directory / SOURCE_NAME
    return data_dir / SOURCE_NAME


def build_corpus(source: Path, size: int, directory: str | None) -> Path:
    """`source` repeated to `size` bytes, cut at a character boundary."""
    body = source.read_bytes()
    if not body:
        raise SystemExit(f"{source} is empty")
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", dir=directory, delete=False) as out:
        written = 0
        while written < size:
            piece = body[: size - written]
            if len(piece) < len(body):
                # Drop a cut multi-byte character: a byte 0b10xxxxxx continues a sequence.
                while piece and (body[len(piece)] & 0xC0) == 0x80:
                    piece = piece[:-1]
                if not piece:
                    break
            out.write(piece)
            written += len(piece)
    return Path(out.name)


def measure(module: str, path: Path | None, block_size: int) -> dict:
    args = [sys.executable, "-c", CHILD, module, str(path or ""), str(block_size)]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"the measuring process failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=1024, help="corpus size in MiB")
    parser.add_argument("--source", type=Path, default=None, help="text to repeat")
    parser.add_argument("--block-size", type=int, default=128)
    parser.add_argument("--tmp-dir", default=None, help="where the corpus is written")
    parser.add_argument("--keep", action="store_true", help="keep the corpus file")
    parser.add_argument(
        "--module",
        default="chargpt.data.datamodule",
        help="the module whose CharDataModule is measured (to compare another version)",
    )
    args = parser.parse_args()
    source = args.source or default_source()
    if not source.is_file():
        raise SystemExit(f"no source text at {source}: pass --source FILE")
    small = build_corpus(source, SMALL_BYTES, args.tmp_dir)
    path = build_corpus(source, int(args.size_mb * 2**20), args.tmp_dir)
    try:
        baseline = measure(args.module, None, args.block_size)
        fixed = measure(args.module, small, args.block_size)
        run = measure(args.module, path, args.block_size)
        file_bytes = path.stat().st_size
    finally:
        small.unlink()
        if args.keep:
            print(f"corpus kept at {path}")
        else:
            path.unlink()
    token_kib = run["token_bytes"] / 1024
    setup_cost = run["setup_peak_kib"] - baseline["import_peak_kib"]
    loaders_cost = run["loaders_peak_kib"] - baseline["import_peak_kib"]
    print(f"module               {args.module}")
    print(f"source               {source}")
    print(f"file size            {file_bytes:,} bytes ({mib(file_bytes / 1024)})")
    print(f"characters           {run['characters']:,}")
    print(f"token tensor         {run['token_bytes']:,} bytes ({mib(token_kib)}, {run['dtype']})")
    print(f"peak RSS, import     {mib(baseline['import_peak_kib'])} (baseline: imports only)")
    print(f"peak RSS, 64 KiB     {mib(fixed['loaders_peak_kib'])} (setup + loaders of 64 KiB)")
    print(f"peak RSS, setup      {mib(run['setup_peak_kib'])}")
    print(f"peak RSS, + loaders  {mib(run['loaders_peak_kib'])} (val and test, one batch each)")
    print(f"setup cost           {mib(setup_cost)} = {setup_cost / token_kib:.2f} x the tokens")
    print(f"setup+loaders cost   {mib(loaders_cost)} = {loaders_cost / token_kib:.2f} x the tokens")
    print(f"wall time            setup {run['setup_s']:.1f} s, loaders {run['loaders_s']:.2f} s")
    # CPU time counts what the process did: on a shared machine, wall time also counts waiting.
    print(f"CPU time             setup {run['setup_cpu_s']:.1f} s (all threads)")


if __name__ == "__main__":
    main()
