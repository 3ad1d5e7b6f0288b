"""TrainingThroughput: training tokens per second, validation excluded."""

from __future__ import annotations

from helpers import tiny_setup

from chargpt.training.callbacks.throughput import TrainingThroughput


def test_throughput_counts_training_tokens_per_second(play_file):
    throughput = TrainingThroughput(window=2)
    trainer, module, datamodule = tiny_setup(
        play_file,
        max_steps=4,
        val_check_interval=2,
        callbacks=[throughput],
        enable_checkpointing=False,
    )
    trainer.fit(module, datamodule=datamodule)
    assert throughput.tokens_per_s is not None and throughput.tokens_per_s > 0
    # 4 batches of 4 windows of 16 characters, over no more time than training took.
    assert throughput._tokens == 4 * 4 * 16
    assert trainer.logged_metrics["perf/tokens_per_s"] > 0
