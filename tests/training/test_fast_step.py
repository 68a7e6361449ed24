"""fastfit: ForeachAdam against fastai's Adam, and the lean recording against fastai's Recorder."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from fastai.optimizer import Adam

from leukoreport.training.fast_step import DeviceSmoothLoss, ForeachAdam
from leukoreport.training.two_phase import PhaseConfig, train
from tests.conftest import tiny_train_config


def _model(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))


def _groups(model):
    """Two parameter groups like fastai's splitter: body (conv, bn) and head (linear)."""
    return [list(model[0].parameters()) + list(model[1].parameters()), list(model[4].parameters())]


def _drive(opt_func, seed: int = 0) -> tuple[list[torch.Tensor], list[dict]]:
    """A frozen-then-unfrozen run with per-step hyper-parameter changes, no weight decay on BN and biases."""
    model = _model(1)
    opt = opt_func(_groups(model), lr=1e-2)
    for p in (model[1].weight, model[1].bias, model[0].bias, model[4].bias):
        opt.state[p]["do_wd"] = False
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 3, 8, 8, generator=gen)
    y = torch.randint(0, 5, (6,), generator=gen)
    for p in model[0].parameters():
        p.requires_grad_(False)  # frozen body (BN stays trainable, as fastai's train_bn does)
    for i in range(12):
        if i == 5:
            model[0].requires_grad_(True)  # unfreeze: these parameters start their own step count
        opt.set_hyper("lr", [1e-3 * (i + 1), 1e-2 / (i + 1)])
        opt.set_hyper("mom", 0.95 - 0.01 * i)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
    params = [p.detach().clone() for p in model.parameters()]
    return params, [opt.state[p] for p in model.parameters()]


def test_foreach_adam_is_bit_identical_to_fastai_adam():
    ours, our_state = _drive(ForeachAdam)
    theirs, their_state = _drive(Adam)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    for a, b in zip(our_state, their_state):
        assert a.keys() == b.keys()
        assert a.get("step") == b.get("step")
        for key in ("grad_avg", "sqr_avg"):
            if key in b:
                assert torch.equal(a[key], b[key])
    # the conv weights were frozen for 5 of the 12 steps, the head never
    assert our_state[0]["step"] == 7 and our_state[-1]["step"] == 12
    # and the weights did move: the test would notice a step that does nothing
    assert not torch.equal(ours[-2], _model(1)[4].weight)


def test_foreach_adam_state_dict_loads_into_fastai_adam():
    model = _model(2)
    opt = ForeachAdam(_groups(model), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    other = Adam(_groups(model), lr=1e-3)
    other.load_state_dict(opt.state_dict())
    assert other.state[model[4].weight]["step"] == 1
    assert torch.equal(other.state[model[4].weight]["grad_avg"], opt.state[model[4].weight]["grad_avg"])


def test_zero_grad_zeroes_every_gradient():
    model = _model(3)
    opt = ForeachAdam(_groups(model), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.zero_grad()
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


def test_device_smooth_loss_matches_fastai():
    from types import SimpleNamespace

    from fastai.learner import AvgSmoothLoss

    ours, theirs = DeviceSmoothLoss(0.98), AvgSmoothLoss(0.98)
    for value in (2.0, 1.5, 1.7, 0.9):
        learn = SimpleNamespace(loss=torch.tensor([value, value / 2]))
        ours.accumulate(learn)
        theirs.accumulate(learn)
    assert ours.count == theirs.count == 4
    assert torch.equal(ours.value, theirs.value)


CFG = tiny_train_config(phases=[PhaseConfig(True, 1e-2, 3, 1), PhaseConfig(False, 1e-3, 3, 2)], channels_last=True)


@pytest.mark.parametrize("cached", [False, True])
def test_lean_loop_changes_no_number(tiny_split, cached, monkeypatch):
    """The same seed gives the same history and weights with the lean loop (ForeachAdam forced on, as on CUDA)
    as with fastai's own step and Recorder."""
    import leukoreport.training.two_phase
    from leukoreport.data.image_cache import split_cache

    monkeypatch.setattr(leukoreport.training.two_phase, "_use_foreach", lambda cfg, device: cfg.lean_loop)
    steps, step = [], ForeachAdam.step
    monkeypatch.setattr(ForeachAdam, "step", lambda self, closure=None: steps.append(1) or step(self, closure))
    cache = split_cache(tiny_split, CFG.size) if cached else None
    lean, lean_history, lean_info = train(tiny_split, CFG, seed=5, threads=1, cache=cache)
    plain, plain_history, _ = train(tiny_split, replace(CFG, lean_loop=False), seed=5, threads=1, cache=cache)
    cols = ["train_loss", "valid_loss", "accuracy", "train_accuracy"]
    assert steps, "the lean run did not use ForeachAdam"
    assert lean_history[cols].equals(plain_history[cols])
    for a, b in zip(lean.model.state_dict().values(), plain.model.state_dict().values()):
        assert torch.equal(a, b)
    # the learner that is exported holds fastai's objects only
    assert lean.opt_func is Adam and type(lean.opt) is type(plain.opt)
    assert type(lean.recorder.smooth_loss).__module__.startswith("fastai")
    assert all(x.device.type == "cpu" for x in lean.recorder.losses)
    assert lean_info["lean_loop"] is True and lean_info["optimizer"] == "fastai Adam, foreach step"


def _capabilities(amx: bool, avx512_bf16: bool):
    """A stand-in for ``torch.cpu.get_capabilities`` of a CPU with or without AMX and AVX512-BF16."""
    return lambda: {"amx_bf16": amx, "amx_tile": amx, "avx512_bf16": avx512_bf16, "avx512_f": True}


@pytest.mark.parametrize("amx, avx512_bf16, expected", [(False, True, "bf16"), (True, False, "bf16"),
                                                        (True, True, "bf16"), (False, False, "fp32")])
def test_auto_precision_is_bf16_where_the_cpu_computes_bf16(monkeypatch, amx, avx512_bf16, expected):
    """``auto`` on a CPU: bf16 with AMX or AVX512-BF16 (torch's cpuinfo probe), fp32 with neither."""
    from leukoreport.base.errors import LeukoError
    from leukoreport.training.device import cpu_bf16_support, resolve_precision

    monkeypatch.setattr(torch.cpu, "get_capabilities", _capabilities(amx, avx512_bf16))
    assert resolve_precision("auto", "cpu") == expected
    assert cpu_bf16_support() == ("amx" if amx else "avx512_bf16" if avx512_bf16 else "")
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(LeukoError, match="config key precision: 'fp16' needs a CUDA device"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("flags, expected", [("fpu avx2 avx512f avx512_bf16", "avx512_bf16"),
                                             ("fpu avx2 amx_bf16 amx_tile amx_int8", "amx"),
                                             ("fpu avx2 avx512f avx512_vnni", "")])
def test_without_torch_probe_the_cpuinfo_flags_decide(monkeypatch, tmp_path, flags, expected):
    import leukoreport.training.device as train_module

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n\nprocessor\t: 1\nflags\t\t: {flags}\n")
    monkeypatch.delattr(torch.cpu, "get_capabilities")
    real = train_module.cpuinfo_bf16_support
    monkeypatch.setattr(train_module, "cpuinfo_bf16_support", lambda path=cpuinfo: real(path))
    assert train_module.cpu_bf16_support() == expected
    assert train_module.resolve_precision("auto", "cpu") == ("bf16" if expected else "fp32")
    assert real(tmp_path / "missing") == ""


def test_auto_precision_on_cuda_follows_the_gpu(monkeypatch):
    from leukoreport.training.device import resolve_precision

    monkeypatch.setattr(torch.cpu, "get_capabilities", _capabilities(True, True))
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, answer=supported, **k: answer)
        assert resolve_precision("auto", "cuda") == expected


def test_this_machine_bf16_support_is_reported(record_property, capsys):
    """The real machine's answer, printed and recorded (not asserted: it depends on the CPU)."""
    from leukoreport.training.device import cpu_bf16_support, cpuinfo_bf16_support, resolve_precision

    answer = {"torch_probe": cpu_bf16_support(), "proc_cpuinfo": cpuinfo_bf16_support(),
              "auto_on_cpu": resolve_precision("auto", "cpu")}
    record_property("cpu_bf16_support", answer)
    with capsys.disabled():
        print(f"\nthis CPU: {answer}")
    assert answer["auto_on_cpu"] in ("bf16", "fp32")


def test_cpu_bf16_autocast_trains_in_bf16_and_exports_fp32(tiny_split, tmp_path):
    """precision bf16 on the CPU: the convolutions run in bf16 (the numbers change), the weights stay fp32."""
    from leukoreport.training.two_phase import export_learner

    cfg = replace(CFG, phases=[PhaseConfig(True, 1e-2, 2, 1)])
    bf16, bf16_history, info = train(tiny_split, replace(cfg, precision="bf16"), seed=3, threads=1)
    _, fp32_history, fp32_info = train(tiny_split, replace(cfg, precision="fp32"), seed=3, threads=1)
    assert info["precision"] == "bf16" and fp32_info["precision"] == "fp32"
    assert not bf16_history["valid_loss"].equals(fp32_history["valid_loss"])
    assert (bf16_history["valid_loss"] - fp32_history["valid_loss"]).abs().max() < 0.5  # same recipe, near values
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())
    assert not any(type(cb).__module__.startswith("leukoreport") for cb in bf16.cbs)
    # a forward pass under the callback's autocast gives bf16 activations
    from leukoreport.training.fast_step import CPUAutocast

    seen = []
    hook = bf16.model[0][0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    bf16.fit(1, 1e-4, cbs=[CPUAutocast()])
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    export_learner(bf16, tmp_path / "model.pkl")
    assert (tmp_path / "model.pkl").stat().st_size > 1000
