import pytest

from chargpt.model import ConfigError, GPTConfig, config, gpt


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": 100, "n_head": 3}, "model.d_model=100 is not divisible by model.n_head=3"),
        ({"n_layer": 0}, "model.n_layer=0: must be a positive integer"),
        ({"block_size": -8}, "model.block_size=-8: must be a positive integer"),
        ({"vocab_size": 0}, "model.vocab_size=0: must be a positive integer"),
        ({"dropout": 1.0}, "model.dropout=1.0: must be in [0, 1)"),
        ({"dropout": -0.1}, "model.dropout=-0.1: must be in [0, 1)"),
        ({"norm": "batchnorm"}, "model.norm='batchnorm': must be one of layernorm, rmsnorm"),
        (
            {"norm_position": "middle"},
            "model.norm_position='middle': must be one of pre, post, peri, deepnorm",
        ),
        ({"mlp": "relu"}, "model.mlp='relu': must be one of gelu, swiglu, relu2"),
        (
            {"pos_encoding": "rotary"},
            "model.pos_encoding='rotary': must be one of learned, sinusoidal, rope, alibi, none",
        ),
        (
            {"n_kv_head": 3},
            "model.n_kv_head=3 does not divide model.n_head=8: choose one of 1, 2, 4, 8",
        ),
        ({"n_kv_head": 0}, "model.n_kv_head=0: must be a positive integer, or null for n_head"),
        ({"qk_norm": 1}, "model.qk_norm=1: must be true or false"),
        (
            {"pos_encoding": "rope", "d_model": 24, "n_head": 8},
            "model.pos_encoding=rope rotates pairs of channels, but the head size "
            "d_model/n_head=24/8=3 is odd",
        ),
        ({"mlp_ratio": 0}, "model.mlp_ratio=0: must be > 0"),
        ({"tie_weights": "yes"}, "model.tie_weights='yes': must be true or false"),
        ({"dropout": "0.1"}, "model.dropout='0.1': must be a number"),
    ],
)
def test_invalid_config_names_the_key_and_the_fix(overrides, message):
    with pytest.raises(ConfigError) as error:
        GPTConfig(**({"vocab_size": 10} | overrides))
    assert message in str(error.value)


def test_unknown_field_is_rejected():
    with pytest.raises(TypeError, match="n_layers"):
        GPTConfig(vocab_size=10, n_layers=2)


def test_derived_sizes():
    config = GPTConfig(vocab_size=10, d_model=128, n_head=8)
    assert config.head_size == 16
    assert config.mlp_hidden == 512
    swiglu = GPTConfig(vocab_size=10, d_model=128, mlp="swiglu")
    assert swiglu.mlp_hidden == 344  # 8/3 · 128 = 341.3, rounded up to a multiple of 8
    assert swiglu.mlp_hidden % 8 == 0


def test_every_allowed_variant_has_a_class_and_every_class_is_allowed():
    """The config validates the strings; the model maps them to classes: the two lists agree."""
    assert tuple(gpt.NORMS) == config.NORMS
    assert tuple(gpt.MLPS) == config.MLPS
    assert tuple(gpt.POSITIONS) == config.POS_ENCODINGS
    assert tuple(gpt.NORM_PLACEMENTS) == config.NORM_POSITIONS
