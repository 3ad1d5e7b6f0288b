import pytest
import torch

from chargpt.model import GPT
from chargpt.model.sampling import SamplingConfig, generate_text
from chargpt.runs.checkpoint import load_checkpoint
from chargpt.sample import defaults, main, parse_args


def sample(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_samples_start_with_the_prompt(capsys, trained_checkpoint):
    code, out, _ = sample(
        capsys,
        f"ckpt={trained_checkpoint}",
        "prompt=ALL:",
        "max_new_tokens=30",
        "num_samples=2",
        "top_k=5",
        "top_p=0.9",
    )
    assert code == 0
    texts = out.rstrip("\n").split("\n---\n")
    assert len(texts) == 2
    assert all(t.startswith("ALL:") and len(t) == len("ALL:") + 30 for t in texts)


def test_same_seed_same_samples(capsys, trained_checkpoint):
    runs = [
        sample(capsys, f"ckpt={trained_checkpoint}", "seed=7", "max_new_tokens=40")[1]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_greedy_and_stop(capsys, trained_checkpoint):
    base = [f"ckpt={trained_checkpoint}", "prompt=ALL:", "temperature=0", "max_new_tokens=40"]
    full = sample(capsys, *base)[1][:-1]  # print() adds a newline
    stop = full[len("ALL:") + 5]  # a character greedy decoding is known to reach
    code, out, _ = sample(capsys, *base, f"stop={stop}")
    assert code == 0
    expected = full[: full.index(stop, len("ALL:")) + 1]
    assert out[:-1] == expected and len(expected) < len(full)


def test_halve_window_matches_slide_until_the_window_moves(capsys, trained_checkpoint):
    """The fixture's block_size is 16: the first 13 characters after a 4-character prompt see the
    same context under both windows."""
    base = [f"ckpt={trained_checkpoint}", "prompt=ALL:", "seed=3", "max_new_tokens=60"]
    slide = sample(capsys, *base)[1]
    code, halve, _ = sample(capsys, *base, "window=halve")
    assert code == 0 and len(halve) == len(slide) == len("ALL:") + 60 + 1
    assert halve[:17] == slide[:17]
    assert halve != slide  # the window is passed on: past it, the contexts differ


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prompt=ALL#@"], "prompt='ALL#@' has characters the corpus lacks: '#', '@'"),
        (["stop=#"], "stop='#': must be one character of the corpus"),
        (["top_k=1000"], "top_k=1000: must be between 1 and the vocabulary size 39"),
        (["temprature=1"], "temprature: not a key of chargpt.sample (did you mean temperature?)"),
        (["top_kk=4"], "top_kk: not a key of chargpt.sample (did you mean top_k?)"),
        (["sampling.top_k=3"], "sampling.top_k: not a key of chargpt.sample (did you mean top_k?)"),
        (["top_k.x=3"], "top_k.x: not a key of chargpt.sample (did you mean top_k?)"),
        (["top_k=many"], "top_k: Value 'many' of type 'str' could not be converted to Integer"),
    ],
)
def test_bad_arguments_give_one_line_errors(capsys, trained_checkpoint, args, message):
    code, out, err = sample(capsys, f"ckpt={trained_checkpoint}", *args)
    assert code == 2 and out == ""
    assert err.startswith("chargpt.sample: error: ") and err.count("\n") == 1
    assert message in err


def test_prompt_is_taken_verbatim(trained_checkpoint):
    args = parse_args([f"ckpt={trained_checkpoint}", "prompt=${x}: ROMEO", "top_k=3"])
    assert args.sampling.prompt == "${x}: ROMEO" and args.sampling.top_k == 3


def test_the_commands_defaults():
    args = parse_args(["ckpt=model.ckpt"])
    assert (args.ckpt, args.batch_size, args.device, args.dtype) == (
        "model.ckpt",
        64,
        "cpu",
        "float32",
    )
    expected = SamplingConfig(max_new_tokens=500, temperature=0.8, seed=1337)
    assert args.sampling == expected and args.sampling.prompt == "\n"


def test_missing_checkpoint_argument(capsys):
    code, _, err = sample(capsys, "prompt=hi")
    assert code == 2 and "ckpt=PATH is required" in err


@pytest.mark.parametrize("kind", ["missing", "not a checkpoint", "truncated"])
def test_unusable_checkpoint_gives_one_line_error(capsys, tmp_path, trained_checkpoint, kind):
    path = tmp_path / "model.ckpt"
    if kind == "not a checkpoint":
        path.write_text("FIRST CITIZEN: not weights")
    elif kind == "truncated":
        data = trained_checkpoint.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    code, out, err = sample(capsys, f"ckpt={path}")
    assert code == 2 and out == "" and err.count("\n") == 1
    expected = "checkpoint not found" if kind == "missing" else "is not a readable checkpoint"
    assert err.startswith("chargpt.sample: error: ") and expected in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["device=banana"], "device='banana' is not a device: use cpu, cuda, cuda:N or mps"),
        (["temperature=-1"], "temperature=-1.0: must be >= 0"),
        (["top_k=0"], "top_k=0: must be between 1 and the vocabulary size"),
        (["top_p=1.5"], "top_p=1.5: must be in (0, 1]"),
        (["top_p=0"], "top_p=0.0: must be in (0, 1]"),
        (["max_new_tokens=-3"], "max_new_tokens=-3: must be >= 0"),
        (["prompt="], "prompt is empty"),
        (["stop=ab"], "stop='ab': must be a single character"),
        (["window=crop"], "window='crop': must be one of slide, halve"),
        (["num_samples=0"], "num_samples=0: must be >= 1"),
        (["batch_size=0"], "batch_size=0: must be >= 1"),
        (["dtype=half"], "dtype='half': must be one of float32, bfloat16, float16"),
        (["max_new_tokens=1000000000"], "max_new_tokens=1000000000: 1 samples of 1000000001"),
        (["num_samples=100", "max_new_tokens=300000"], "64 samples of 300001 tokens at once"),
    ],
)
def test_bad_settings_fail_before_the_checkpoint_is_read(capsys, tmp_path, args, message):
    code, out, err = sample(capsys, f"ckpt={tmp_path / 'nope.ckpt'}", *args)
    assert code == 2 and out == ""
    assert err.startswith("chargpt.sample: error: ") and err.count("\n") == 1
    assert message in err and "checkpoint not found" not in err


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_16_bit_sampling_under_autocast(capsys, trained_checkpoint, monkeypatch, dtype):
    """The GPU's bf16 path on the CPU: the model's matmuls run in 16 bits, the texts stay whole."""
    seen = []
    original = torch.nn.functional.linear

    def linear(x, weight, bias=None):
        out = original(x, weight, bias)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "linear", linear)
    args = [f"ckpt={trained_checkpoint}", "prompt=ALL:", "max_new_tokens=20", "num_samples=2"]
    code, out, _ = sample(capsys, *args, f"dtype={dtype}")
    assert code == 0
    texts = out.removesuffix("\n").split("\n---\n")
    assert len(texts) == 2 and all(t.startswith("ALL:") and len(t) == 24 for t in texts)
    assert set(seen) == {getattr(torch, dtype)}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_device_error(capsys, tmp_path):
    code, out, err = sample(capsys, f"ckpt={tmp_path / 'nope.ckpt'}", "device=cuda")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "device=cuda: PyTorch sees no GPU here (torch " in err and "; use device=cpu" in err


def test_help_lists_every_key_with_its_default(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    listed = dict(line.split(maxsplit=1) for line in out.split("defaults:\n", 1)[1].splitlines())
    assert set(listed) == set(defaults())
    assert listed["batch_size"] == "64" and listed["max_new_tokens"] == "500"
    assert listed["prompt"] == repr("\n") and listed["top_k"] == "none"
    assert listed["ckpt"].startswith("required")


@pytest.fixture
def generated_rows(monkeypatch):
    """The number of rows of every call to GPT.generate."""
    rows, real_generate = [], GPT.generate

    def counting(self, idx, *args, **kwargs):
        rows.append(idx.size(0))
        return real_generate(self, idx, *args, **kwargs)

    monkeypatch.setattr(GPT, "generate", counting)
    return rows


def test_samples_are_generated_in_batches(capsys, trained_checkpoint, generated_rows):
    base = [f"ckpt={trained_checkpoint}", "prompt=ALL:", "max_new_tokens=30", "seed=5"]
    code, out, _ = sample(capsys, *base, "num_samples=5", "batch_size=2")
    assert code == 0 and generated_rows == [2, 2, 1]
    texts = out.removesuffix("\n").split("\n---\n")
    assert len(texts) == 5 and all(len(t) == len("ALL:") + 30 for t in texts)
    first_two = sample(capsys, *base, "num_samples=2")[1].removesuffix("\n").split("\n---\n")
    assert texts[:2] == first_two  # the first batch uses the seed itself
    assert texts[2:4] != texts[:2]  # later batches another seed
    assert sample(capsys, *base, "num_samples=5", "batch_size=2")[1] == out


@pytest.mark.parametrize("batch_size", [3, 64])
def test_up_to_batch_size_samples_are_those_of_one_call(capsys, trained_checkpoint, batch_size):
    model, tokenizer = load_checkpoint(trained_checkpoint)
    sampling = SamplingConfig(
        prompt="ALL:", max_new_tokens=25, temperature=0.8, seed=11, num_samples=3, top_k=5
    )
    expected = generate_text(model, tokenizer, sampling)
    code, out, _ = sample(
        capsys,
        f"ckpt={trained_checkpoint}",
        "prompt=ALL:",
        "max_new_tokens=25",
        "seed=11",
        "num_samples=3",
        "top_k=5",
        f"batch_size={batch_size}",
    )
    assert code == 0 and out == "\n---\n".join(expected) + "\n"
