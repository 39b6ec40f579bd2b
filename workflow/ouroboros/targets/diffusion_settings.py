"""The diffusion target's settings, each with the stage it changes (what
:class:`~ouroboros.targets.diffusion.DiffusionTarget` declares, kept apart from what it does).  Settings that
only one data kind reads (:mod:`ouroboros.targets.diffusion_data`) say so with ``applies``."""
from __future__ import annotations

from ouroboros.settings import settings_schema
from ouroboros.targets.diffusion_data import Images, Points
from ouroboros.targets.gmm import PRESETS
from ouroboros.targets.torch_base import KEEP_SETTING, THREADS_SETTING

IMAGE_DATA = Images.names
_IMAGES = {"data": list(IMAGE_DATA)}
_POINTS = {"data": list(Points.names)}

PARAMS = settings_schema({
    "data": {"stage": "data", "enum": [*IMAGE_DATA, "gmm"], "default": "digits",
             "description": "images (scikit-learn's digits offline, MNIST / Fashion-MNIST IDX files) or points "
                            "from a known Gaussian mixture (gmm)"},
    "root": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "type": "string", "default": "",
             "description": "folder with the IDX .gz files; relative to the working directory"},
    "split": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "enum": ["train", "test"], "default": "test",
              "description": "which original split is the real pool (it is split again into train/test)"},
    "download": {"stage": "data", "applies": {"data": ["mnist", "fashion-mnist"]}, "type": "boolean", "default": False},
    "test_fraction": {"stage": "data", "applies": _IMAGES, "type": "number", "exclusiveMinimum": 0, "maximum": 0.5, "default": 0.2},
    "split_seed": {"stage": "data", "applies": _IMAGES, "type": "integer", "minimum": 0, "default": 0},
    "truth": {"stage": "data", "applies": _POINTS, "default": "separated",
              "description": "the mixture (gmm): a preset of the GMM target or {weights, means, stds|covs}",
              "oneOf": [{"enum": sorted(PRESETS)}, {"type": "object"}]},
    "eval_size": {"stage": "sample", "applies": _POINTS, "type": "integer", "minimum": 100, "maximum": 10_000_000,
                  "default": 10000,
                  "description": "Monte Carlo size of the mixture metrics (gmm)"},
    "test_size": {"stage": "data", "applies": _POINTS, "type": "integer", "minimum": 10, "default": 2000,
                  "description": "real held-out points (gmm)"},
    "eval_samples": {"stage": "evaluate", "applies": _POINTS, "type": "integer", "minimum": 10, "default": 2000,
                     "description": "samples the point metrics are fitted to, at least (gmm): a chain that "
                                    "draws fewer (a large real share) is scored on a separate draw of this many"},
    "channels": {"stage": "fit", "applies": _IMAGES, "type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1,
                 "default": [32, 64],
                 "description": "the UNet's block_out_channels, one per resolution; the image side must be "
                                "divisible by 2^(len - 1)"},
    "layers_per_block": {"stage": "fit", "applies": _IMAGES, "type": "integer", "minimum": 1, "default": 1},
    "norm_groups": {"stage": "fit", "applies": _IMAGES, "type": "integer", "minimum": 1, "default": 8,
                    "description": "GroupNorm groups; every entry of channels must be a multiple"},
    "hidden": {"stage": "fit", "applies": _POINTS, "type": "integer", "minimum": 1, "default": 128, "description": "MLP width"},
    "depth": {"stage": "fit", "applies": _POINTS, "type": "integer", "minimum": 1, "default": 3, "description": "MLP layers"},
    "train_timesteps": {"stage": "fit", "type": "integer", "minimum": 2, "default": 1000, "description": "the forward process's T"},
    "beta_schedule": {"stage": "fit", "enum": ["linear", "scaled_linear", "squaredcos_cap_v2"], "default": "linear"},
    "beta_start": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 1e-4},
    "beta_end": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": 0.02},
    "sampler": {"stage": "sample", "enum": ["ddim", "ddpm"], "default": "ddim",
                "description": "ddim (eta 0) or ddpm (eta 1: DDPM's ancestral sampler), over `steps` steps"},
    "steps": {"stage": "sample", "type": "integer", "minimum": 1, "default": 50, "description": "sampling steps"},
    "train_steps": {"stage": "fit", "type": "integer", "minimum": 1, "default": 2000,
                    "description": "optimiser steps per generation (batches drawn with replacement)"},
    "batch_size": {"stage": "fit", "type": "integer", "minimum": 1, "default": 128},
    "lr": {"stage": "fit", "type": "number", "exclusiveMinimum": 0, "default": 1e-3},
    "lr_schedule": {"stage": "fit", "enum": ["constant", "cosine"], "default": "constant",
                    "description": "constant, or cosine decay from lr to 0 over train_steps"},
    "ema": {"stage": "fit", "type": "number", "minimum": 0, "exclusiveMaximum": 1, "default": 0.0,
            "description": "decay of an exponential moving average of the weights, which is then the model "
                           "(0: off)"},
    "init": {"stage": "fit", "enum": ["scratch", "previous"], "default": "scratch",
             "description": "train each generation from a new network, or fine-tune generation t - 1's"},
    "device": {"stage": "none", "enum": ["auto", "cpu", "cuda"], "default": "auto"},
    "threads": THREADS_SETTING,
    "keep": KEEP_SETTING,
    "amp": {"stage": "fit", "type": "boolean", "default": False, "description": "bf16 autocast on GPU"},
    "sample_batch": {"stage": "sample", "type": "integer", "minimum": 1, "default": 1000, "description": "items per sampling batch"},
    "score_draws": {"stage": "sample", "type": "integer", "minimum": 1, "default": 4,
                    "description": "fixed (timestep, noise) draws per item of the denoising-loss score"},
    "judge_epochs": {"stage": "sample", "applies": _IMAGES, "type": "integer", "minimum": 1, "default": 30},
    "eval_max": {"stage": "evaluate", "type": "integer", "minimum": 50, "default": 2000,
                 "description": "at most this many items enter the k-NN and pairwise metrics"},
})

#: small settings that run in seconds (tests/test_regime_modes.py): images and points
TEST_SETTINGS = (
    {"params": {"data": "digits", "channels": [8, 16], "norm_groups": 4, "train_steps": 3, "batch_size": 16,
                "steps": 2, "judge_epochs": 1, "device": "cpu", "eval_max": 60}, "n": 40, "replicates": 1},
    {"params": {"data": "gmm", "truth": "blob", "train_steps": 5, "eval_size": 200, "test_size": 50,
                "eval_samples": 50, "hidden": 8, "depth": 1, "steps": 2, "device": "cpu"}, "n": 40, "replicates": 1})
