"""Two-phase fine-tuning of a fastai ResNet (resnet18 by default, config key ``arch``; BatchNorm, GroupNorm or
frozen BatchNorm, key ``norm``): frozen backbone, then unfrozen, each with early stopping.

The exported ``model.pkl`` references fastai and torchvision objects only, so ``load_learner`` can open it
in a process that cannot import leukoreport.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from leukoreport.base.atomic_io import atomic_path
from leukoreport.base.errors import LeukoError
from leukoreport.base.step_log import eta_seconds, rough_duration
from leukoreport.config.settings import schema_defaults, with_defaults
from leukoreport.training.checkpoint import (
    TrainState,
    checkpoint_callback,
    fit_state,
    load_checkpoint,
    restore_fit,
    restore_rng,
    resume_callback,
    rng_state,
    save_checkpoint,
    train_fingerprint,
)
from leukoreport.training.device import describe_device, resolve_device, resolve_precision
from leukoreport.training.normalisation import (
    DEFAULT_ARCH,
    DEFAULT_NORM,
    arch_function,
    has_imagenet_weights,
    norm_params_callback,
    set_norm,
)
from leukoreport.training.stain_jitter import StainAugmentation, stain_transforms, strip_leukoreport

__all__ = ["Augmentation", "EXPORT_OVERHEAD", "HISTORY_COLUMNS", "PhaseConfig", "PhaseResult", "TrainConfig",
           "batch_limit", "build_learner", "effective_init", "epoch_line", "epoch_progress", "export_learner",
           "make_dataloaders", "train", "train_phase"]

EXPORT_OVERHEAD = 200_000  # bytes of a model.pkl beyond its tensors (the pickled learner; 0.1 MB measured)

HISTORY_COLUMNS = ["phase", "epoch", "phase_epoch", "train_loss", "valid_loss", "accuracy", "train_accuracy",
                   "seconds"]


@dataclass
class PhaseConfig:
    """One training phase: backbone frozen or not, learning rate, epoch budget, early-stopping patience."""

    frozen: bool
    lr: float
    max_epochs: int
    patience: int


@dataclass
class Augmentation:
    """Arguments of fastai's ``aug_transforms`` (config key ``augmentation``; defaults in the schema)."""

    max_rotate: float
    do_flip: bool
    flip_vert: bool
    min_scale: float
    max_zoom: float
    max_warp: float
    max_lighting: float
    p_affine: float
    p_lighting: float


@dataclass
class TrainConfig:
    """Everything that decides a training run besides the data and the seed (defaults: the config schema's)."""

    size: int
    batch_size: int
    pretrained: bool
    schedule: str
    augmentation: Augmentation
    stain: StainAugmentation
    num_workers: int
    device: str
    precision: str
    channels_last: bool
    deterministic: bool
    max_batches: int | None  # benchmarks: at most N training and N validation batches per epoch
    phases: list[PhaseConfig] = field(default_factory=list)
    lean_loop: bool = True  # fastfit: no host sync per batch, foreach Adam on CUDA (same mathematics)
    arch: str = DEFAULT_ARCH  # torchvision backbone (training.normalisation.ARCHITECTURES)
    norm: str = DEFAULT_NORM  # batch | group | frozen (training.normalisation)

    @classmethod
    def from_config(cls, config: dict) -> TrainConfig:
        """Build from the train params (keys of the workflow config); keys left out take the schema's defaults,
        except ``stain_augmentation``, whose absence is an error."""
        _require_stain(config)
        filled, _ = with_defaults(config)
        phases = [
            PhaseConfig(frozen=(name == "frozen"),
                        **{k: filled["phases"][name][k] for k in ("lr", "max_epochs", "patience")})
            for name in ("frozen", "unfrozen")
        ]
        return cls.from_filled(filled, phases=phases)

    @classmethod
    def defaults(cls, **changes: Any) -> TrainConfig:
        """The schema's defaults (no phases), with ``changes`` applied: for code and tests outside the workflow."""
        return replace(cls.from_filled(schema_defaults()), **changes)

    @classmethod
    def from_filled(cls, config: dict, phases: list[PhaseConfig] | None = None) -> TrainConfig:
        """From a config whose every key is present (the schema's defaults filled in)."""
        return cls(
            size=config["size"],
            batch_size=config["batch_size"],
            pretrained=config["pretrained"],
            schedule=config["schedule"],
            phases=phases or [],
            augmentation=Augmentation(**config["augmentation"]),
            stain=StainAugmentation(**config["stain_augmentation"]),
            num_workers=config["num_workers"],
            device=config["device"],
            precision=config["precision"],
            channels_last=config["channels_last"],
            deterministic=config["deterministic"],
            max_batches=config["max_batches"],
            arch=config["arch"],
            norm=config["norm"],
        )


def _require_stain(config: dict) -> None:
    """``stain_augmentation`` of the train params must be there and well formed, never a silent default."""
    if "stain_augmentation" not in config:
        raise LeukoError("config key stain_augmentation: missing from the training parameters")
    value = config["stain_augmentation"]
    if not isinstance(value, dict) or set(value) - {"method", "strength"}:
        raise LeukoError(f"config key stain_augmentation: expected {{method, strength}}, got {value!r}")


@dataclass
class PhaseResult:
    """What happened in one phase; ``best_epoch`` is on the global epoch axis."""

    phase: int
    frozen: bool
    lr: float
    max_epochs: int
    patience: int
    epochs_run: int
    best_epoch: int
    best_valid_loss: float
    stopped_early: bool
    seconds: float = 0.0  # wall time of the phase's fit, validation included


def _use_foreach(cfg: TrainConfig, device: str) -> bool:
    """ForeachAdam where kernel launches are the cost (CUDA); on a CPU the bench measures it slower."""
    return cfg.lean_loop and device.startswith("cuda")


def _fastai_optimizer(learn) -> None:
    """Hand the learner fastai's own Adam back (same state), so that its export needs fastai only."""
    from fastai.optimizer import Adam

    if learn.opt_func is Adam:
        return
    state = learn.opt.state_dict() if learn.opt is not None else None
    learn.opt_func, learn.opt = Adam, None
    if state is not None:
        learn.create_opt()
        learn.opt.load_state_dict(state)


def _speed_callbacks(precision: str, channels_last: bool, lean_loop: bool = False, device: str = "cpu") -> list:
    """fastai callbacks for mixed precision (fastai's on CUDA, fastfit's on the CPU), channels-last memory
    format and fastfit's lean recording."""
    from fastai.callback.channelslast import ChannelsLast
    from fastai.callback.fp16 import AMPMode, MixedPrecision

    cbs = []
    if lean_loop:
        from leukoreport.training.fast_step import LeanRecording

        cbs.append(LeanRecording())
    if channels_last:
        cbs.append(ChannelsLast())
    if precision in ("bf16", "fp16") and device.startswith("cuda"):
        cbs.append(MixedPrecision(amp_mode=AMPMode.BF16 if precision == "bf16" else AMPMode.FP16))
    elif precision == "bf16":
        from leukoreport.training.fast_step import CPUAutocast

        cbs.append(CPUAutocast())
    return cbs


def make_dataloaders(split: pd.DataFrame, cfg: TrainConfig, device: str):
    """fastai DataLoaders over the train and valid rows of ``split`` with the paper's augmentation, then the
    optional stain jitter of ``cfg.stain`` (training batches only, before the learner's ``Normalize``).

    Labels come from the parent folder (``parent_label``) and the split from ``IndexSplitter``, both fastai
    objects, so the exported learner stays loadable without leukoreport.
    """
    from fastai.vision.all import (
        CategoryBlock,
        DataBlock,
        ImageBlock,
        IndexSplitter,
        Resize,
        aug_transforms,
        parent_label,
    )

    rows = split[split["split"].isin(["train", "valid"])].reset_index(drop=True)
    mismatch = rows[[Path(p).parent.name != lab for p, lab in zip(rows["path"], rows["label"])]]
    if len(mismatch):
        raise LeukoError(f"{mismatch['path'].iloc[0]}: label '{mismatch['label'].iloc[0]}' is not its folder name")
    classes = sorted(split["label"].unique())
    aug = cfg.augmentation
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock(vocab=classes)),
        get_y=parent_label,
        splitter=IndexSplitter(rows.index[rows["split"] == "valid"].tolist()),
        item_tfms=Resize(cfg.size),
        batch_tfms=aug_transforms(
            size=cfg.size,
            min_scale=aug.min_scale,
            max_rotate=aug.max_rotate,
            do_flip=aug.do_flip,
            flip_vert=aug.flip_vert,
            max_zoom=aug.max_zoom,
            max_warp=aug.max_warp,
            max_lighting=aug.max_lighting,
            p_affine=aug.p_affine,
            p_lighting=aug.p_lighting,
        ) + stain_transforms(cfg.stain),
    )
    items = [Path(p) for p in rows["path"]]
    return block.dataloaders(items, bs=cfg.batch_size, num_workers=cfg.num_workers, device=device)


def build_learner(dls, pretrained: bool, opt_func=None, arch: str = DEFAULT_ARCH, norm: str = DEFAULT_NORM):
    """A fastai ``vision_learner`` on torchvision's ``arch`` with accuracy as metric (fastai's Adam by default),
    its BatchNorm layers set as ``norm`` says; ImageNet weights only where ``has_imagenet_weights``."""
    from fastai.vision.all import Adam, accuracy, vision_learner

    learn = vision_learner(dls, arch_function(arch), pretrained=pretrained and has_imagenet_weights(arch, norm),
                           metrics=accuracy, opt_func=opt_func or Adam)
    set_norm(learn.model, norm)
    return learn


def effective_init(cfg: TrainConfig, init: str = "") -> tuple[bool, str]:
    """(ImageNet weights used, the initialisation in words) of a run of ``cfg``; ``init``: the weights job's."""
    if cfg.pretrained and not has_imagenet_weights(cfg.arch, cfg.norm):
        return False, "random (no ImageNet weights for GroupNorm)"
    return cfg.pretrained, init or ("ImageNet" if cfg.pretrained else "random (pretrained: false)")


def _tracker_class():
    """The in-memory best-weights callback (defined lazily so importing this module stays cheap)."""
    from fastai.callback.tracker import TrackerCallback

    class RestoreBest(TrackerCallback):
        """Track valid_loss, keep the best weights in memory, time epochs, and restore the best at the end."""

        def __init__(self):
            super().__init__(monitor="valid_loss")
            self.best_state, self.best_epoch, self.seconds, self.train_accuracy = None, None, [], []

        def before_epoch(self):
            self._start = time.perf_counter()
            self._correct, self._seen = 0, 0

        def after_batch(self):
            if self.training and len(self.learn.yb):
                target = self.learn.yb[0]  # counted on the device: no synchronisation per batch
                self._correct = self._correct + (self.learn.pred.argmax(dim=-1) == target).sum()
                self._seen += len(target)

        def after_epoch(self):
            super().after_epoch()
            self.seconds.append(time.perf_counter() - self._start)
            self.train_accuracy.append(float(self._correct) / self._seen if self._seen else float("nan"))
            if self.new_best:
                self.best_state = {k: v.detach().clone() for k, v in self.learn.model.state_dict().items()}
                self.best_epoch = self.epoch

        def after_fit(self):
            super().after_fit()
            if self.best_state is not None:
                self.learn.model.load_state_dict(self.best_state)

    return RestoreBest


def epoch_line(phase_no: int, frozen: bool, epoch: int, max_epochs: int, train_loss: float, valid_loss: float,
               accuracy: float, seconds: float, left: float) -> str:
    """The progress line of one epoch (``epoch`` counted from 1 within the phase, ``left`` in seconds)."""
    line = (f"phase {phase_no} ({'frozen' if frozen else 'unfrozen'}) epoch {epoch}/{max_epochs}: "
            f"train loss {train_loss:.3f}, valid loss {valid_loss:.3f}, accuracy {100 * accuracy:.1f}%, "
            f"{rough_duration(seconds)}, est. {rough_duration(left)} left in phase")
    return line + (" (at most; early stopping may end sooner)" if epoch < max_epochs else "")


def epoch_progress(phase_no: int, phase_cfg: PhaseConfig, progress: Callable[[str], None]):
    """A fastai callback that hands ``progress`` one ``epoch_line`` after every epoch (it draws no random numbers);
    passed to ``fit`` only, so that the exported learner never holds it."""
    from fastai.callback.core import Callback

    class EpochProgress(Callback):
        order = 55  # after the Recorder (50) has the epoch's values, before early stopping (60) may end the fit

        def __init__(self):
            self.durations: list[float] = []

        def before_epoch(self):
            self._start = time.perf_counter()

        def after_epoch(self):
            self.durations.append(time.perf_counter() - self._start)
            recorder = self.learn.recorder
            rec = dict(zip(recorder.metric_names[1:-1], recorder.values[-1]))
            done, mean = len(self.durations), sum(self.durations) / len(self.durations)
            nan = float("nan")
            progress(epoch_line(phase_no, phase_cfg.frozen, done, phase_cfg.max_epochs,
                                float(rec.get("train_loss", nan)), float(rec.get("valid_loss", nan)),
                                float(rec.get("accuracy", nan)), self.durations[-1],
                                eta_seconds(mean, done, phase_cfg.max_epochs)))

    return EpochProgress()


def batch_limit(max_batches: int):
    """A fastai callback that ends every training pass and every validation pass after ``max_batches`` batches
    (config key ``max_batches``, for benchmarks); the one-cycle schedule spans the shortened epoch."""
    from fastai.callback.core import Callback, CancelTrainException, CancelValidException

    class BatchLimit(Callback):
        order = 100  # last: every other callback's after_batch has seen the final batch

        def before_batch(self):
            if self.iter == 0:
                self.learn.n_iter = min(self.n_iter, max_batches)  # pct_train (the schedule) of the short epoch

        def after_batch(self):
            if self.iter + 1 >= max_batches:
                raise CancelTrainException() if self.training else CancelValidException()

        # a shortened pass, not a failed one: the Recorder (order 50, before us) keeps its losses and metrics
        def after_cancel_train(self):
            self.learn.recorder.cancel_train = False

        def after_cancel_validate(self):
            self.learn.recorder.cancel_valid = False

    return BatchLimit()


def train_phase(learn, phase_cfg: PhaseConfig, phase_no: int, epoch_offset: int, schedule: str,
                extra_cbs: list | None = None, progress: Callable[[str], None] = print,
                save: Callable[[int, dict], None] | None = None, resume: TrainState | None = None):
    """Run one phase; returns its history rows and a ``PhaseResult`` (best weights restored).

    ``progress`` gets one line per epoch (``epoch_line``) in place of fastai's bare lists. ``save(epochs done,
    fit state)`` is called after every epoch; ``resume`` (a checkpoint inside this phase) skips its finished
    epochs and restores the optimiser, tracker, early-stopping and random state before the next one."""
    from fastai.callback.tracker import EarlyStoppingCallback
    from fastcore.foundation import L

    if phase_cfg.frozen:
        learn.freeze()
    else:
        learn.unfreeze()
    tracker = _tracker_class()()
    stopper = EarlyStoppingCallback(monitor="valid_loss", patience=phase_cfg.patience)
    fit = learn.fit_one_cycle if schedule == "one_cycle" else learn.fit
    start = time.perf_counter()
    progress_cb = epoch_progress(phase_no, phase_cfg, progress)
    cbs = [tracker, stopper, progress_cb, *(extra_cbs or [])]
    if resume is not None:
        learn.opt.load_state_dict({"state": resume.optimizer["state"], "hypers": L(resume.optimizer["hypers"])})
        cbs.append(resume_callback(resume.phase_epochs, lambda: restore_fit(learn, tracker, stopper, progress_cb,
                                                                             resume.fit, resume.rng)))
    if save is not None:
        cbs.append(checkpoint_callback(lambda done: save(done, fit_state(learn, tracker, stopper, progress_cb))))
    with learn.no_bar(), learn.no_logging():  # no bare fastai lists: the progress callback reports each epoch
        fit(phase_cfg.max_epochs, phase_cfg.lr, cbs=cbs)
    seconds = time.perf_counter() - start + (sum(resume.fit["seconds"]) if resume is not None else 0.0)
    names = list(learn.recorder.metric_names[1:-1])  # train_loss, valid_loss, accuracy
    rows = []
    for i, values in enumerate(learn.recorder.values):
        rec = dict(zip(names, values))
        rows.append(
            {
                "phase": phase_no,
                "epoch": epoch_offset + i + 1,
                "phase_epoch": i + 1,
                "train_loss": float(rec["train_loss"]),
                "valid_loss": float(rec["valid_loss"]),
                "accuracy": float(rec["accuracy"]),
                "train_accuracy": round(tracker.train_accuracy[i], 6),
                "seconds": round(tracker.seconds[i], 3),
            }
        )
    result = PhaseResult(
        phase=phase_no,
        frozen=phase_cfg.frozen,
        lr=phase_cfg.lr,
        max_epochs=phase_cfg.max_epochs,
        patience=phase_cfg.patience,
        epochs_run=len(rows),
        best_epoch=epoch_offset + tracker.best_epoch + 1,
        best_valid_loss=float(tracker.best),
        stopped_early=len(rows) < phase_cfg.max_epochs,
        seconds=round(seconds, 3),
    )
    return rows, result


def _saver(path: Path, fingerprint: str, learn, phase_no: int, rows: list[dict], phases: list[dict]):
    """``save(epochs done, fit state)`` for ``train_phase``: a checkpoint inside phase ``phase_no``."""

    def save(done: int, fit: dict) -> None:
        save_checkpoint(path, TrainState(
            fingerprint=fingerprint, phase=phase_no, phase_epochs=done, epochs_done=len(rows) + done,
            model=learn.model.state_dict(), rows=rows, phases=phases,
            rng=rng_state([learn.dls.train, learn.dls.valid]), optimizer=learn.opt.state_dict(), fit=fit))

    return save


def _resume_line(state: TrainState, cfg: TrainConfig, path: Path) -> str:
    """'resuming after epoch 3 (phase 2, epoch 1 of 20) from FILE' or, once every phase ended, 'resuming after
    epoch 9 (training finished; exporting) from FILE'."""
    if state.phase > len(cfg.phases):
        where = "training finished; exporting"
    elif state.phase_epochs == 0:
        where = f"phase {state.phase - 1} finished"
    else:
        where = f"phase {state.phase}, epoch {state.phase_epochs} of {cfg.phases[state.phase - 1].max_epochs}"
    return f"resuming after epoch {state.epochs_done} ({where}) from {path.as_posix()}"


def train(split: pd.DataFrame, cfg: TrainConfig, seed: int, threads: int | None = None, init: str = "",
          cache=None, progress: Callable[[str], None] = print, checkpoint: str | Path | None = None):
    """Seed everything, train both phases, and return ``(learner, history, info)``; ``progress`` gets one line
    per epoch (``epoch_line``).

    With ``cache`` (a ``data.image_cache.ImageCache`` of the split) the images come from it; the returned learner
    holds the usual file-based DataLoaders either way, so that its export loads with ``load_learner`` alone.
    With ``checkpoint`` (a file path) the state is saved there after every epoch and at the end of every phase,
    and a checkpoint of the same recipe, split and seed found there is resumed after its last finished epoch;
    the caller removes it once its outputs are written.
    """
    import torch
    from fastai.torch_core import set_seed

    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(cfg.device)
    set_seed(seed, reproducible=cfg.deterministic)
    if not cfg.deterministic:
        torch.backends.cudnn.benchmark = True  # fastest cuDNN algorithms, chosen by timing: not bit-reproducible
    start = time.perf_counter()
    precision = resolve_precision(cfg.precision, device)
    dls = make_dataloaders(split, cfg, device)
    opt_func = None
    if _use_foreach(cfg, device):
        from leukoreport.training.fast_step import ForeachAdam as opt_func
    learn = build_learner(dls, cfg.pretrained, opt_func, cfg.arch, cfg.norm)
    pretrained, init_text = effective_init(cfg, init)
    if cache is not None:
        from leukoreport.training.cached_loader import cached_dataloaders

        learn.dls = cached_dataloaders(dls, cache, [str(p) for p in (*dls.train.items, *dls.valid.items)])
    extra = _speed_callbacks(precision, cfg.channels_last, cfg.lean_loop, device)
    if cfg.norm == "group":
        extra.append(norm_params_callback())
    if cfg.max_batches:
        extra.append(batch_limit(cfg.max_batches))
    rows: list[dict] = []
    phases: list[dict] = []
    state, path = None, Path(checkpoint) if checkpoint else None
    fingerprint = train_fingerprint(asdict(cfg), seed, split.to_dict("records"), init)
    if path is not None:
        state, note = load_checkpoint(path, fingerprint)
        if note:
            progress(note)
    if state is not None:
        progress(_resume_line(state, cfg, path))
        learn.model.load_state_dict(state.model)
        rows, phases = list(state.rows), list(state.phases)
        if state.phase_epochs == 0:
            restore_rng(state.rng, [learn.dls.train, learn.dls.valid])
    for number, phase_cfg in enumerate(cfg.phases, start=1):
        if state is not None and number < state.phase:
            continue
        resume = state if state is not None and number == state.phase and state.phase_epochs else None
        save = _saver(path, fingerprint, learn, number, rows, phases) if path is not None else None
        phase_rows, result = train_phase(learn, phase_cfg, number, len(rows), cfg.schedule, extra, progress,
                                         save, resume)
        rows += phase_rows
        phases.append(asdict(result))
        if path is not None:
            save_checkpoint(path, TrainState(
                fingerprint=fingerprint, phase=number + 1, phase_epochs=0, epochs_done=len(rows),
                model=learn.model.state_dict(), rows=rows, phases=phases,
                rng=rng_state([learn.dls.train, learn.dls.valid])))
    learn.dls = dls
    strip_leukoreport(learn.dls)  # the stain jitter is train-only: the export must need fastai alone
    learn.model.to(memory_format=torch.contiguous_format)
    _fastai_optimizer(learn)
    per_epoch = len(dls.train_ds) if not cfg.max_batches else min(len(dls.train_ds), cfg.max_batches * cfg.batch_size)
    n_images = per_epoch * sum(r["phase"] > 0 for r in rows)
    info = {
        "seed": seed,
        "pretrained": pretrained,
        "init": init_text,
        "arch": cfg.arch,
        "norm": cfg.norm,
        "device": describe_device(device).short,
        "threads": torch.get_num_threads(),
        "size": cfg.size,
        "batch_size": cfg.batch_size,
        "schedule": cfg.schedule,
        "stain_augmentation": asdict(cfg.stain),
        "classes": list(dls.vocab),
        "n_train": len(dls.train_ds),
        "n_valid": len(dls.valid_ds),
        "seconds": round(time.perf_counter() - start, 3),
        "precision": precision,
        "channels_last": cfg.channels_last,
        "deterministic": cfg.deterministic,
        "image_cache": cache is not None,
        "lean_loop": cfg.lean_loop,
        **({"max_batches": cfg.max_batches} if cfg.max_batches else {}),
        "optimizer": "fastai Adam, foreach step" if opt_func else "fastai Adam",
        "train_images_per_second": round(n_images / max(1e-9, sum(r["seconds"] for r in rows)), 2),
        "phases": phases,
        **({"resumed_after_epoch": state.epochs_done} if state is not None else {}),
    }
    return learn, pd.DataFrame(rows, columns=HISTORY_COLUMNS), info


def export_learner(learn, out: str | Path) -> None:
    """``Learner.export`` to ``out`` atomically, so a failed job leaves no model.pkl; leukoreport transforms
    are removed from the learner's DataLoaders first. On failure (a full disk: one line naming the file and the
    size) the learner keeps its DataLoaders and optimiser."""
    out = Path(out).resolve()
    strip_leukoreport(learn.dls)
    learn.path = out.parent
    dls, opt = learn.dls, learn.opt
    size = sum(t.numel() * t.element_size() for t in learn.model.state_dict().values())
    try:
        with atomic_path(out, size_hint=size + EXPORT_OVERHEAD) as tmp:
            learn.export(tmp)
    except BaseException:
        learn.dls, learn.opt = dls, opt  # fastai restores them only after a successful save
        raise
