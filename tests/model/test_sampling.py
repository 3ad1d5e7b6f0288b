import dataclasses

import pytest
import torch

from chargpt.data.tokenizer import CharTokenizer
from chargpt.errors import SettingError
from chargpt.model import GPT, GPTConfig
from chargpt.model.sampling import (
    MAX_BATCH_TOKENS,
    SAMPLING_KEYS,
    SamplingConfig,
    batch_seed,
    generate_batches,
    generate_text,
    sample_next,
    top_k_filter,
    top_p_filter,
)


def test_top_k_keeps_exactly_the_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0, 2.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, True, False]]


def test_top_p_keeps_the_smallest_nucleus_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [[True, False, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.8)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(top_p_filter(logits, 0.81)).tolist() == [[True, True, True, False]]
    # The nucleus is found per row, whatever the order of the vocabulary.
    shuffled = logits[:, [3, 1, 0, 2]]
    assert torch.isfinite(top_p_filter(shuffled, 0.8)).tolist() == [[False, True, True, False]]


def test_temperature_zero_is_greedy():
    logits = torch.tensor([[0.1, 2.0, 1.9], [3.0, 0.0, 0.0]])
    assert sample_next(logits, SamplingConfig(temperature=0)).tolist() == [[1], [0]]


# One bad value per setting, and the message it must give.
BAD_SETTINGS = [
    ({"prompt": ""}, "prompt is empty: give at least one character"),
    ({"prompt": 5}, "prompt=5: must be text"),
    ({"max_new_tokens": -3}, "max_new_tokens=-3: must be >= 0"),
    ({"max_new_tokens": 2.5}, "max_new_tokens=2.5: must be an integer"),
    ({"temperature": -1}, "temperature=-1: must be >= 0 (0 means greedy decoding)"),
    ({"temperature": float("nan")}, "temperature=nan: must be a finite number"),
    ({"temperature": "hot"}, "temperature='hot': must be a finite number"),
    ({"top_k": 0}, "top_k=0: must be between 1 and the vocabulary size, or null"),
    ({"top_k": True}, "top_k=True: must be an integer, or null"),
    ({"top_p": 0.0}, "top_p=0.0: must be in (0, 1], or null"),
    ({"top_p": 1.5}, "top_p=1.5: must be in (0, 1], or null"),
    ({"seed": 2**64}, f"seed={2**64}: must be a whole number from {-(2**63)} to {2**64 - 1}"),
    ({"seed": "1"}, "seed='1': must be an integer"),
    ({"stop": "ab"}, "stop='ab': must be a single character, or null"),
    ({"num_samples": 0}, "num_samples=0: must be >= 1"),
    ({"window": "crop"}, "window='crop': must be one of slide, halve"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS)
def test_a_bad_setting_is_refused_when_the_config_is_created(settings, message):
    with pytest.raises(SettingError) as error:
        SamplingConfig(**settings)
    (key,) = settings
    assert str(error.value).startswith(message) and message.startswith(key)


def test_every_setting_has_a_bad_value_tested():
    assert {key for settings, _ in BAD_SETTINGS for key in settings} == set(SAMPLING_KEYS)


def test_a_checked_config_cannot_be_changed_and_replace_checks_again():
    """The checks run once, when the config is created: nothing can change it afterwards."""
    sampling = SamplingConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sampling.temperature = -1.0
    with pytest.raises(SettingError, match=r"temperature=-1\.0"):
        dataclasses.replace(sampling, temperature=-1.0)


def test_the_defaults_are_valid_and_numbers_of_either_kind_are_accepted():
    assert SamplingConfig() == SamplingConfig(temperature=0.8, max_new_tokens=200, seed=0)
    SamplingConfig(temperature=1, top_p=1, top_k=3, seed=-1, stop="\n", window="halve")


TOKENIZER = CharTokenizer(list("abc\n"))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"top_k": 5}, "top_k=5: must be between 1 and the vocabulary size 4"),
        ({"prompt": "abxy"}, "prompt='abxy' has characters the corpus lacks: 'x', 'y'"),
        ({"stop": "z"}, "stop='z': must be one character of the corpus"),
    ],
)
def test_vocabulary_checks_name_the_key(settings, message):
    with pytest.raises(SettingError) as error:
        SamplingConfig(**settings).check_vocabulary(TOKENIZER.vocab_size, TOKENIZER)
    assert str(error.value).startswith(message)


def test_top_k_is_checked_without_a_tokenizer_and_may_equal_the_vocabulary():
    SamplingConfig(top_k=4, prompt="xyz").check_vocabulary(4)
    with pytest.raises(SettingError, match="top_k=5"):
        SamplingConfig(top_k=5).check_vocabulary(4)


def test_output_size_counts_the_samples_of_one_batch():
    length = MAX_BATCH_TOKENS // 4  # prompt + new tokens: 4 samples of it fill one batch
    sampling = SamplingConfig(prompt="a", max_new_tokens=length - 1, num_samples=8)
    sampling.check_output_size(batch_size=4)
    with pytest.raises(SettingError, match=f"max_new_tokens={length - 1}: 8 samples of {length}"):
        sampling.check_output_size()
    with pytest.raises(SettingError, match="batch_size=0: must be >= 1"):
        sampling.check_output_size(batch_size=0)


def test_batch_seeds_are_deterministic_and_distinct():
    assert batch_seed(7, 0) == 7
    # Pinned: the digest fixes every later batch's samples, so users' samples depend on it.
    assert batch_seed(7, 1) == 6434081439913846194
    assert batch_seed(1337, 2) == 4083649761254864161
    seeds = {batch_seed(seed, index) for seed in range(5) for index in range(1, 50)}
    assert len(seeds) == 5 * 49 and all(0 <= s < 2**63 for s in seeds)


@pytest.fixture
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=4, block_size=8, n_layer=1, n_head=2, d_model=8)).eval()


def test_text_is_the_prompt_and_continues_until_the_stop_character(model):
    sampling = SamplingConfig(prompt="ab", max_new_tokens=30, num_samples=6, stop="\n", seed=2)
    texts = generate_text(model, TOKENIZER, sampling)
    assert len(texts) == 6 and all(text.startswith("ab") for text in texts)
    for text in texts:
        assert "\n" not in text[2:-1]  # cut after the first stop character
        assert text.endswith("\n") or len(text) == 2 + 30
    assert generate_text(model, TOKENIZER, sampling) == texts  # the same seed, the same texts


def test_batches_are_the_samples_of_one_call_then_more(model):
    sampling = SamplingConfig(prompt="a", max_new_tokens=10, num_samples=5, seed=4)
    batches = list(generate_batches(model, TOKENIZER, sampling, batch_size=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    first_two = generate_text(model, TOKENIZER, dataclasses.replace(sampling, num_samples=2))
    assert batches[0] == first_two


def test_text_helpers_refuse_a_prompt_the_tokenizer_lacks(model):
    with pytest.raises(SettingError, match="prompt='aq' has characters the corpus lacks: 'q'"):
        generate_text(model, TOKENIZER, SamplingConfig(prompt="aq"))
