"""The generation benchmark runs end to end on a tiny model and reports what it measured."""

import json

import pytest

from chargpt.bench.generation import load_preset, main


def test_reports_cached_and_uncached_speed_for_each_length(tmp_path, capsys):
    path = tmp_path / "generation.json"
    args = ["--size", "tiny", "--block-size", "8", "--new-tokens", "4", "12", "--repeats", "2"]
    main([*args, "--json", str(path)])
    table = capsys.readouterr().out
    for window in ("slide", "halve"):
        assert f"| {window} | 4 |" in table and f"| {window} | 12 |" in table
    report = json.loads(path.read_text())
    assert [(r["window"], r["new_tokens"]) for r in report["results"]] == [
        ("slide", 4),
        ("slide", 12),
        ("halve", 4),
        ("halve", 12),
    ]
    assert report["model"]["block_size"] == 8
    assert report["model"]["d_model"] == load_preset("tiny")["d_model"]
    for result in report["results"]:
        assert len(result["cached_tokens_per_s"]) == len(result["uncached_tokens_per_s"]) == 2
        assert result["same_tokens"]


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match=r"size='huge'.*small"):
        load_preset("huge")


def test_variants_are_measured_side_by_side_with_their_kv_cache(tmp_path, capsys):
    path = tmp_path / "generation.json"
    args = ["--size", "tiny", "--block-size", "8", "--new-tokens", "12", "--repeats", "2"]
    variants = ["--variant", "n_kv_head=4", "--variant", "n_kv_head=1,pos_encoding=rope"]
    main([*args, *variants, "--windows", "halve", "--batch-size", "3", "--json", str(path)])
    table = capsys.readouterr().out
    assert "| n_kv_head=4 | 24.0 KiB | halve | 12 |" in table  # 2 layers·(k, v)·3·4·8·16·4 B
    assert "| n_kv_head=1,pos_encoding=rope | 6.0 KiB | halve | 12 |" in table
    report = json.loads(path.read_text())
    assert report["models"]["n_kv_head=1,pos_encoding=rope"]["pos_encoding"] == "rope"
    assert [r["kv_cache_bytes"] for r in report["results"]] == [24576, 6144]
    assert all(r["same_tokens"] for r in report["results"])


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("n_kv_head", "--variant 'n_kv_head': must be KEY=VALUE"),
        ("n_kv_head=3", "n_kv_head=3"),
        ("foo=1", "'foo' is not a model setting a variant may change"),
        ("vocab_size=5", "'vocab_size' is not a model setting a variant may change"),
    ],
)
def test_bad_variants_are_named(variant, message):
    with pytest.raises(ValueError, match=message):
        main(["--size", "tiny", "--variant", variant, "--new-tokens", "2", "--repeats", "1"])


def test_a_variant_named_twice_is_refused():
    with pytest.raises(ValueError, match="names a variant twice"):
        main(["--size", "tiny", "--variant", "qk_norm=true", "--variant", "qk_norm=true"])
