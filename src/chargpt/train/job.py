"""The train command's job: `run_job` around `train(cfg)`, imported once Hydra has composed a run.

`train` checks the settings, builds the data, the module and the Trainer (`chargpt.training.
trainer`, which the benchmark uses too), trains, tests and reports. `run_job`, the Hydra task,
holds the policy around it: the run folder's lock, run.json, one-line errors and exit codes,
what an interrupted or failed run leaves behind, and what the console shows.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from chargpt.data.datamodule import CharDataModule
from chargpt.errors import one_line, user_error
from chargpt.model.parameters import num_parameters, training_flops_per_token
from chargpt.runs.checkpoint import CheckpointError
from chargpt.runs.commands import TRAIN, command
from chargpt.runs.files import RunBusyError, run_lock
from chargpt.runs.launch import discard_unused_folder
from chargpt.runs.layout import CHECKPOINT_DIR, LAST_CHECKPOINT
from chargpt.runs.read import override_key
from chargpt.runs.record import RunRecord, format_duration, write_sweep_summary
from chargpt.runs.resume import check_targets, check_write_locations
from chargpt.runs.variant import is_setting, run_label, variant_name
from chargpt.training.budget import StepCost, budget_of, check_processes, derive_max_steps, describe
from chargpt.training.callbacks.interrupt import INTERRUPTIONS, TrainingInterrupted
from chargpt.training.callbacks.throughput import TrainingThroughput
from chargpt.training.console import LOG, log_always, quiet_libraries, set_console_quiet
from chargpt.training.loggers import (
    close_loggers,
    describe_loggers,
    log_outcome,
    tensorboard_version,
    wandb_run_id,
)
from chargpt.training.matmul import set_matmul_precision
from chargpt.training.module import GPTLightningModule
from chargpt.training.precision import resolve_precision
from chargpt.training.threads import set_threads
from chargpt.training.trainer import (
    best_checkpoint,
    build_module,
    build_trainer,
    check_resumable,
    check_settings,
)


def run_job(cfg: DictConfig) -> float:
    """The task `run.py` runs, once per run or sweep job: train and record the outcome.

    A user-fixable error is printed as one line (HYDRA_FULL_ERROR=1 shows the traceback); in a
    sweep a failed job is recorded and the sweep goes on, and Hydra's sweep callback reports it
    at the end. A single run whose settings fail before training leaves no folder behind.
    Ctrl+C or SIGTERM saves `last.ckpt` and stops, with the command that resumes.
    """
    _set_up_console(cfg)
    run_dir = Path(cfg.paths.output_dir)
    try:
        with contextlib.ExitStack() as held:
            if rank_zero_only.rank == 0:
                held.enter_context(run_lock(run_dir))  # one process trains in a folder
            return _run_locked(cfg, held)
    except RunBusyError as error:
        return _fail(error, str(error))


def _run_locked(cfg: DictConfig, held: contextlib.ExitStack) -> float:
    record = _new_record(cfg)
    started = time.perf_counter()
    try:
        best = train(cfg, record)
    except BaseException as error:
        interrupted = isinstance(error, (*INTERRUPTIONS, SystemExit))
        message = _interruption(error) if interrupted else one_line(user_error(error) or error)
        started_training = record.num_params is not None
        if interrupted or started_training or _in_sweep():
            record.wall_s = (record.wall_s or 0.0) + time.perf_counter() - started
            try:
                record.end("interrupted" if interrupted else "failed", message)
                _refresh_sweep_summary(record)
            except OSError as write_error:  # the disk that failed the run may fail this too
                LOG.warning("warning: could not update %s: %s", record.path, write_error)
        else:  # only a folder this launch made goes (a resumed run's own folder stays)
            held.close()  # the lock file goes with the folder
            discard_unused_folder(Path(record.run_dir))
        if interrupted:
            _exit_interrupted(error, message, record)
        return _fail(error, message, record.job_num)
    record.wall_s = (record.wall_s or 0.0) + time.perf_counter() - started
    record.end("finished")
    _refresh_sweep_summary(record)
    if _in_sweep():
        log_always(_job_line(record))
    return best


def _fail(error: BaseException, message: str, job_num: int | None = None) -> float:
    """A failed job in a sweep (the sweep goes on), else a one-line error and exit code 1."""
    if _in_sweep():
        LOG.error("error: job %s failed: %s", job_num, message)
        return math.nan  # sweepers (Optuna) see a failed trial
    if user_error(error) is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise error
    LOG.error("error: %s", message)
    sys.exit(1)


def train(cfg: DictConfig, record: RunRecord | None = None) -> float:
    """Train, test the best checkpoint, and return the best validation loss (for sweepers).

    `record` (run.json) is started once the settings and data are known to be good.
    """
    started = time.perf_counter()
    record = record or _new_record(cfg)
    datamodule, module, cost = _prepare(cfg)
    _fill_run_identity(cfg, record)
    trainer = build_trainer(cfg, module, progress_bar=cfg.verbose or not _in_sweep())
    check_processes(trainer, cost)
    record.num_params = num_parameters(module.model)
    record.save()
    if rank_zero_only.rank == 0:
        _announce(record, module)
    best = best_checkpoint(trainer)
    try:
        _log_run_config(cfg, trainer, record)
        # weights_only: a checkpoint is plain data; loading one never runs pickled code.
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
        _fill_outcome(record, trainer, best)
        if cfg.test_after_training:
            record.test_loss = _test_loss(trainer, module, datamodule, best, cfg.verbose)
        log_outcome(
            trainer.loggers,
            _swept_settings(cfg, record.overrides),
            record.best_val_loss,
            record.test_loss,
            trainer.global_step,
        )
    except BaseException as error:
        _fill_outcome(record, trainer, best)
        close_loggers(trainer.loggers, exit_code=1)
        _raise_restore_failure(cfg, module, error)
        raise
    close_loggers(trainer.loggers, exit_code=0)
    if rank_zero_only.rank == 0:
        wall_s = (record.wall_s or 0.0) + time.perf_counter() - started
        _report(cfg, record, best, trainer.loggers, wall_s)
    return math.nan if best.best_model_score is None else float(best.best_model_score)


def _prepare(cfg: DictConfig) -> tuple[CharDataModule, GPTLightningModule, StepCost | None]:
    """Check the settings (and a resumed run's folder and checkpoint), then build data and model."""
    if cfg.ckpt_path:  # a run folder is untrusted: it names no code, writes nowhere else
        check_targets(cfg)
        check_write_locations(cfg)
    check_settings(cfg)
    resolve_precision(cfg.trainer)  # auto: bf16-mixed where the device has native bf16
    set_threads(cfg.trainer.get("num_threads", "auto"), _launcher_config())
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    set_matmul_precision(cfg.float32_matmul_precision)  # "high": TF32 on GPUs
    datamodule: CharDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    with open_dict(cfg):
        cfg.model.vocab_size = datamodule.vocab_size  # facts flow one way: data -> model
    cost = derive_max_steps(cfg, _task_overrides())  # before the schedule reads max_steps
    if cost is not None and rank_zero_only.rank == 0:
        key, value = budget_of(cfg.trainer)
        steps = f"{cfg.trainer.max_steps:,}"
        LOG.info("trainer.%s=%g: %s steps of %s", key, value, steps, describe(cost))
    module = build_module(cfg, datamodule)
    if cfg.ckpt_path:
        step = check_resumable(cfg.ckpt_path, module)
        if rank_zero_only.rank == 0:
            LOG.info("resume:   from %s at step %d", Path(cfg.ckpt_path).resolve(), step)
    return datamodule, module, cost


def _log_run_config(cfg: DictConfig, trainer: L.Trainer, record: RunRecord) -> None:
    """The resolved config, the parameter count, the variant (the overrides less the seed, for
    wandb's "Group by variant") and the run's name to every logger; the wandb id to run.json."""
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run_config["num_params"] = record.num_params
    run_config["variant"] = variant_name(record.overrides)
    run_config["run_name"] = run_label(record.overrides, record.job_num)  # csv/hparams.yaml too
    for logger in trainer.loggers:
        logger.log_hyperparams(run_config)
    record.wandb_id = wandb_run_id(trainer.loggers)
    record.save()  # a killed run can still be resumed into its wandb run


def _test_loss(
    trainer: L.Trainer,
    module: GPTLightningModule,
    datamodule: CharDataModule,
    best: ModelCheckpoint,
    verbose: bool = False,
) -> float | None:
    """The best checkpoint's loss on the test split, as one line (`verbose`: Lightning's table)."""
    results = trainer.test(
        module,
        datamodule=datamodule,
        ckpt_path=best.best_model_path or None,
        weights_only=True,
        verbose=verbose,
    )
    loss = results[0].get("test/loss") if results else None
    if loss is not None and rank_zero_only.rank == 0:
        bpc = results[0].get("test/bpc")
        shown_bpc = "" if bpc is None else f"  bpc {bpc:.3f}"
        LOG.info("test/loss %.4f%s  (the best checkpoint, on the test split)", loss, shown_bpc)
    return loss


def _raise_restore_failure(
    cfg: DictConfig, module: GPTLightningModule, error: BaseException
) -> None:
    """Lightning failed to restore a part the checks do not cover (its loops): one clear line."""
    restoring = cfg.ckpt_path and not module.training_started
    if restoring and isinstance(error, Exception) and user_error(error) is None:
        raise CheckpointError(
            f"resuming from {cfg.ckpt_path} failed before training started "
            f"({type(error).__name__}: {one_line(error)}); resume from another "
            "checkpoint (HYDRA_FULL_ERROR=1 shows the traceback)"
        ) from error


def _fill_run_identity(cfg: DictConfig, record: RunRecord) -> None:
    """Name the run by its job and overrides in wandb and TensorBoard; group a sweep's wandb
    runs by the sweep; a resumed run keeps its wandb id and TensorBoard folder."""
    label = run_label(record.overrides, record.job_num)
    tensorboard_cfg = cfg.logger.get("tensorboard")
    if tensorboard_cfg is not None and tensorboard_cfg.get("version") is None:
        tensorboard_cfg.version = tensorboard_version(
            Path(tensorboard_cfg.save_dir) / tensorboard_cfg.name, label
        )
    wandb_cfg = cfg.logger.get("wandb")
    if wandb_cfg is None:
        return
    if wandb_cfg.get("id") is None and record.wandb_id is not None and cfg.ckpt_path:
        with open_dict(wandb_cfg):
            wandb_cfg.id = record.wandb_id
            wandb_cfg.resume = "allow"
    if wandb_cfg.name is None:
        wandb_cfg.name = label
    if wandb_cfg.group is None and _in_sweep():
        wandb_cfg.group = Path(HydraConfig.get().sweep.dir).as_posix()


def _new_record(cfg: DictConfig) -> RunRecord:
    """A new run.json; a resumed run carries over its start, wall time, overrides and wandb id."""
    run_dir = str(cfg.paths.output_dir)
    overrides, job_num = [], None
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        overrides = list(hydra_cfg.overrides.task)
        job_num = hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None
    record_class = RunRecord if rank_zero_only.rank == 0 else _OtherRankRecord
    record = record_class(run_dir=run_dir, overrides=overrides, job_num=job_num)
    previous = _previous_record(record) if cfg.ckpt_path else None
    if previous is not None:
        record.started, record.wall_s, record.wandb_id = (
            previous.started,
            previous.wall_s,
            previous.wandb_id,
        )
        record.overrides, record.job_num = previous.overrides, previous.job_num
    return record


def _previous_record(record: RunRecord) -> RunRecord | None:
    """The resumed run's record; an unreadable one is set aside and the resume goes on."""
    if not record.path.exists():
        return None
    try:
        return RunRecord.load(record.run_dir)
    except (OSError, ValueError, TypeError) as error:
        if rank_zero_only.rank == 0:
            aside = record.path.with_name(f"{record.path.name}.unreadable")
            with contextlib.suppress(OSError):
                record.path.replace(aside)
            LOG.warning(
                "warning: %s is unreadable (%s); kept as %s, and the resumed run starts a new "
                "record",
                record.path,
                one_line(error),
                aside.name,
            )
        return None


class _OtherRankRecord(RunRecord):
    """In distributed training only rank zero writes run.json; the others keep it in memory."""

    def save(self) -> None:
        pass


def _fill_outcome(record: RunRecord, trainer: L.Trainer, best: ModelCheckpoint) -> None:
    record.global_step = trainer.global_step
    score = best.best_model_score
    record.set_best_val_loss(None if score is None else float(score))
    for callback in trainer.callbacks:
        if isinstance(callback, TrainingThroughput) and callback.tokens_per_s is not None:
            # Over the whole run: the callback's count and time survive a resume (a checkpoint
            # written before they were saved: over the launches since).
            record.tokens_per_s = callback.tokens_per_s
    record.tokens_seen = _tokens_seen(trainer)
    model = getattr(trainer.lightning_module, "model", None)
    if record.tokens_seen is not None and model is not None:
        record.flops = record.tokens_seen * training_flops_per_token(model)


def _tokens_seen(trainer: L.Trainer) -> int | None:
    """Training tokens of the whole run, as its optimizer steps imply (also across resumes)."""
    data = trainer.datamodule
    if data is None:
        return None
    per_step = data.batch_size * data.block_size * trainer.accumulate_grad_batches
    return trainer.global_step * per_step * trainer.world_size


def _task_overrides() -> list[str]:
    """The run's command line (resumed: with the overrides replayed from its folder)."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _launcher_config() -> dict | None:
    """The sweep's launcher (how many jobs share the machine), None outside a sweep."""
    if not _in_sweep():
        return None
    return OmegaConf.to_container(HydraConfig.get().launcher, resolve=True)


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _interruption(error: BaseException) -> str:
    if isinstance(error, TrainingInterrupted):
        return str(error)
    return (
        "interrupted (SIGTERM)" if isinstance(error, SIGTERMException) else "interrupted (Ctrl+C)"
    )


def _exit_interrupted(error: BaseException, message: str, record: RunRecord) -> None:
    """Say what was saved and how to resume, then exit with the shell's code for the signal."""
    saved = getattr(error, "saved_path", None)
    what = message[0].upper() + message[1:]
    last = Path(record.run_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT
    if saved is not None:
        LOG.warning("\n%s; saved %s.\n%s", what, saved, _resume_hint(saved))
    elif last.is_file():  # stopped outside training (the final test): the last save stands
        LOG.warning(
            "\n%s; nothing new was saved, %s holds the run at step %s.\n%s",
            what,
            last,
            record.global_step,
            _resume_hint(last),
        )
    else:
        LOG.warning("\n%s; no checkpoint was saved.", what)
    sys.exit(143 if "SIGTERM" in message else 130)


def _resume_hint(checkpoint: str | os.PathLike) -> str:
    return f"Resume with: {_resume_command(checkpoint)}"


def _resume_command(checkpoint: str | os.PathLike) -> str:
    """A command that resumes from `checkpoint` in any directory (chargpt.runs.commands)."""
    return f"{command(TRAIN)} ckpt_path={Path(checkpoint).resolve()}"


def _refresh_sweep_summary(record: RunRecord) -> None:
    """A sweep job (also one resumed later) updates its sweep's summary.csv."""
    if record.job_num is not None and rank_zero_only.rank == 0:
        write_sweep_summary(Path(record.run_dir).parent)


def _report(
    cfg: DictConfig,
    record: RunRecord,
    best: ModelCheckpoint,
    loggers: list[Logger],
    wall_s: float,
) -> None:
    """The end-of-run summary: the results, and where everything went."""
    lines = [f"outputs:      {cfg.paths.output_dir}"]
    if best.best_model_path:
        lines.append(f"best ckpt:    {best.best_model_path} (val/loss {best.best_model_score:.4f})")
    last = Path(best.dirpath or ".") / LAST_CHECKPOINT
    if last.is_file():
        lines.append(f"last ckpt:    {last}  (resume: {_resume_command(last)})")
    lines += describe_loggers(loggers)
    LOG.info("done: %s\n%s", _results_line(record, wall_s), "\n".join(lines))


def _results_line(record: RunRecord, wall_s: float | None = None) -> str:
    """`1,000 steps in 1m 52s · best val/loss 1.8168 · test/loss 1.8707 · 21,300 tokens/s`"""
    wall_s = record.wall_s if wall_s is None else wall_s
    took = "?" if wall_s is None else format_duration(wall_s)
    parts = [f"{record.global_step or 0:,} steps in {took}"]
    if record.best_val_loss is not None:
        parts.append(f"best val/loss {record.best_val_loss:.4f}")
    if record.test_loss is not None:
        parts.append(f"test/loss {record.test_loss:.4f}")
    if record.tokens_per_s is not None:
        parts.append(f"{record.tokens_per_s:,.0f} tokens/s")
    return " · ".join(parts)


def _job_line(record: RunRecord) -> str:
    """A sweep's line for a finished job: `job 3: OVERRIDES · RESULTS -> FOLDER`."""
    label = run_label(record.overrides)
    return f"job {record.job_num}: {label} · {_results_line(record)} -> {record.run_dir}"


def _set_up_console(cfg: DictConfig) -> None:
    """Quiet the libraries; in a sweep, the console shows one line per job (run.log has all);
    `verbose=true` shows everything, Lightning's model summary and wandb's banner included."""
    verbose = cfg.get("verbose") is True  # another value fails in check_settings
    quiet_libraries(verbose)
    set_console_quiet(_in_sweep() and not verbose)
    if verbose:
        with open_dict(cfg):
            cfg.trainer.enable_model_summary = True
            if cfg.logger.get("wandb") is not None:
                cfg.logger.wandb.quiet = False


def _announce(record: RunRecord, module: GPTLightningModule) -> None:
    """The run's first lines: what differs from the defaults (a resumed run: its first
    launch's overrides with this launch's on top), and the model's size."""
    launched = [o for o in _task_overrides() or record.overrides if is_setting(override_key(o))]
    settings = " ".join(launched) or "the defaults"
    model = module.model_config
    LOG.info("settings: %s", settings)
    LOG.info(
        "model:    %s parameters · %d layers · %d heads · d_model %d · context %d · %.2f "
        "MFLOPs/token (training)",
        f"{record.num_params:,}",
        model.n_layer,
        model.n_head,
        model.d_model,
        model.block_size,
        training_flops_per_token(module.model) / 1e6,
    )


def _swept_settings(cfg: DictConfig, overrides: list[str]) -> dict[str, object]:
    """The run's settings from its overrides (seed included), valued as the run used them:
    what TensorBoard's HParams tab lists beside the run's result."""
    settings: dict[str, object] = {}
    for override in overrides:
        key, raw = override_key(override), override.partition("=")[2]
        if not is_setting(key):
            continue
        value = OmegaConf.select(cfg, key, default=raw) if "/" not in key else raw
        if OmegaConf.is_config(value):  # a config group's choice (trainer=debug): its name
            value = raw
        settings[key] = value if isinstance(value, bool | int | float | str) else str(value)
    return settings
