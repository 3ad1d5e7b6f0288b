import pytest

from chargpt.sample import main


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
        (["prompt=ALL#@"], "characters not in the vocabulary: '#', '@'"),
        (["temperature=-1"], "temperature=-1.0: must be >= 0"),
        (["top_k=0"], "top_k=0: must be between 1 and the vocabulary size"),
        (["top_k=1000"], "top_k=1000: must be between 1 and the vocabulary size"),
        (["top_p=1.5"], r"top_p=1.5: must be in (0, 1]"),
        (["top_p=0"], r"top_p=0.0: must be in (0, 1]"),
        (["max_new_tokens=-3"], "max_new_tokens=-3: must be >= 0"),
        (["temprature=1"], "Key 'temprature' not in 'SampleArgs'"),
        (["top_k=many"], "top_k"),
        (["prompt="], "prompt is empty"),
        (["window=crop"], "window='crop': must be one of slide, halve"),
    ],
)
def test_bad_arguments_give_one_line_errors(capsys, trained_checkpoint, args, message):
    code, out, err = sample(capsys, f"ckpt={trained_checkpoint}", *args)
    assert code == 2 and out == ""
    assert err.startswith("chargpt.sample: error: ") and err.count("\n") == 1
    assert message in err


def test_prompt_is_taken_verbatim(trained_checkpoint):
    from chargpt.sample import parse_args

    args = parse_args([f"ckpt={trained_checkpoint}", "prompt=${x}: ROMEO", "top_k=3"])
    assert args.prompt == "${x}: ROMEO" and args.top_k == 3


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
