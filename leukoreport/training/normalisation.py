"""Backbone and normalisation layers as recipe choices (config keys ``arch`` and ``norm``).

``norm: group`` replaces every BatchNorm (the body's BatchNorm2d and the fastai head's BatchNorm1d) by
``torch.nn.GroupNorm`` (32 groups, or the largest divisor of the channels below 32) with the BatchNorm's affine
weight and bias; ``norm: frozen`` replaces every BatchNorm2d of the body by torchvision's ``FrozenBatchNorm2d``
holding the initial running statistics and affine parameters (ImageNet's when pretrained), all four as buffers
that no training step or forward pass changes; the head's BatchNorm1d (new, no statistics to keep) stays.
Only torch and torchvision classes enter the model, so an exported ``model.pkl`` loads with ``load_learner`` alone.
"""

from __future__ import annotations

from leukoreport.base.errors import LeukoError
from leukoreport.config.variants import OPTIONAL_TRAIN_KEYS

__all__ = ["ARCHITECTURES", "DEFAULT_ARCH", "DEFAULT_NORM", "MAX_GROUPS", "NORMS", "arch_function",
           "group_count", "has_imagenet_weights", "norm_params_callback", "set_norm"]

ARCHITECTURES = ("resnet18", "resnet34", "resnet50")  # torchvision's, through fastai's vision_learner
NORMS = ("batch", "group", "frozen")
DEFAULT_ARCH = OPTIONAL_TRAIN_KEYS["arch"]  # the paper's recipe (one home: leukoreport.config.variants)
DEFAULT_NORM = OPTIONAL_TRAIN_KEYS["norm"]
MAX_GROUPS = 32  # Wu & He (2018)


def _check(arch: str, norm: str) -> None:
    """LeukoError naming the config key for an unknown architecture or normalisation."""
    if arch not in ARCHITECTURES:
        raise LeukoError(f"config key arch: {arch!r} is not one of {', '.join(ARCHITECTURES)}")
    if norm not in NORMS:
        raise LeukoError(f"config key norm: {norm!r} is not one of {', '.join(NORMS)}")


def arch_function(arch: str):
    """The torchvision constructor fastai's ``vision_learner`` takes for ``arch`` (fastai's own re-export)."""
    _check(arch, DEFAULT_NORM)
    from fastai.vision import all as vision

    return getattr(vision, arch)


def has_imagenet_weights(arch: str, norm: str) -> bool:
    """Whether torchvision has ImageNet weights for ``arch`` with ``norm``: not for GroupNorm (random init)."""
    _check(arch, norm)
    return norm != "group"


def group_count(channels: int, max_groups: int = MAX_GROUPS) -> int:
    """The largest divisor of ``channels`` that is at most ``max_groups``."""
    if channels < 1:
        raise LeukoError(f"GroupNorm: {channels} channels")
    return max(g for g in range(1, min(channels, max_groups) + 1) if channels % g == 0)


def _group_norm(bn):
    """A GroupNorm standing in for BatchNorm ``bn``: same channels, eps and affine weight and bias."""
    import torch

    gn = torch.nn.GroupNorm(group_count(bn.num_features), bn.num_features, eps=bn.eps, affine=bn.affine)
    if bn.affine:
        with torch.no_grad():
            gn.weight.copy_(bn.weight)
            gn.bias.copy_(bn.bias)
    return gn.to(bn.weight.device if bn.affine else bn.running_mean.device)


def _frozen_norm(bn):
    """torchvision's FrozenBatchNorm2d holding ``bn``'s running statistics and affine weight and bias."""
    import torch
    from torchvision.ops.misc import FrozenBatchNorm2d

    frozen = FrozenBatchNorm2d(bn.num_features, eps=bn.eps)
    with torch.no_grad():
        frozen.running_mean.copy_(bn.running_mean)
        frozen.running_var.copy_(bn.running_var)
        if bn.affine:
            frozen.weight.copy_(bn.weight)
            frozen.bias.copy_(bn.bias)
    return frozen.to(bn.running_mean.device)


def set_norm(model, norm: str):
    """``model`` with its BatchNorm layers replaced in place as ``norm`` says (``batch``: unchanged)."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm

    _check(DEFAULT_ARCH, norm)
    if norm == "batch":
        return model
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if norm == "group" and isinstance(child, _BatchNorm):
                setattr(parent, name, _group_norm(child))
            elif norm == "frozen" and isinstance(child, torch.nn.BatchNorm2d):
                if child.running_mean is None:
                    raise LeukoError(f"config key norm: frozen needs running statistics ({name} has none)")
                setattr(parent, name, _frozen_norm(child))
    return model


def norm_params_callback():
    """A fastai callback (passed to ``fit`` only) giving GroupNorm parameters what fastai gives BatchNorm's: they
    train while the body is frozen (``train_bn``) and get no weight decay (``wd_bn_bias=False``)."""
    import torch
    from fastai.callback.core import Callback

    class GroupNormLikeBatchNorm(Callback):
        order = 0  # before the fit's first step: only the optimiser's per-parameter flags change

        def before_fit(self):
            opt = self.learn.opt
            for module in self.learn.model.modules():
                if isinstance(module, torch.nn.GroupNorm):
                    for p in module.parameters():
                        if self.learn.train_bn:
                            opt.state[p]["force_train"] = True
                        if not self.learn.wd_bn_bias:
                            opt.state[p]["do_wd"] = False
            if getattr(opt, "frozen_idx", None) is not None:
                opt.freeze_to(opt.frozen_idx)  # re-applies requires_grad with the flags above

    return GroupNormLikeBatchNorm()
