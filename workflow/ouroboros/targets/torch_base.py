"""What the torch targets (VAE, LM) share: device choice and GPU declaration, one chain per job, and
saving a model as a state dict plus JSON hyperparameters (loaded with ``weights_only=True``: no pickle).

Subclasses build their network (a module-level ``nn.Module`` of ``ouroboros.nets``) in ``_new_net`` and
keep it, fitted, in ``net_``.  torch is imported only inside methods, so the registry can import every
target module without torch.
"""
from __future__ import annotations

import functools
import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import ClassVar, Optional

from ouroboros import data as D
from ouroboros import io, paths
from ouroboros.targets.base import Target
from ouroboros.torchdev import autocast, device_label, gpus_for, load_weights, resolve_device, save_tensors

#: the ``threads`` setting every torch target's schema carries (see :meth:`TorchTarget.threads`)
THREADS_SETTING = {"stage": "none", "type": "integer", "minimum": 1, "default": 1,
                   "description": "CPU threads of each job (torch's intra-op threads; Snakemake scales it down to "
                                  "--cores): 1 lets --cores N run N chains side by side"}
#: the ``weights_dtype`` setting: the dtype a generation's weights are written in (see :meth:`TorchTarget.saved_dtype`)
WEIGHTS_DTYPE_SETTING = {
    "stage": "fit", "enum": ["fp32", "bf16", "fp16"], "default": "fp32",
    "description": "dtype of a generation's saved weights: fp32 keeps the trained weights exactly; bf16 or fp16 "
                   "halve the disk (every later job, a warm start too, then reads the rounded weights)"}
#: the ``keep`` setting: which generations keep their weights on disk (see :func:`kept`)
KEEP_SETTING = {
    "stage": "none", "default": "all",
    "anyOf": [{"enum": ["all", "last"]}, {"type": "string", "pattern": "^every [1-9][0-9]{0,5}$"}],
    "description": "generations whose weights stay on disk once every job that reads them is done: all; last "
                   "(generation 0 and the last); 'every k' (0, k, 2k, ... and the last); the others keep their "
                   "metrics, samples, manifest, training curve and lineage, and MLflow logs no model for them"}


def kept(keep: str, generation: int, generations: int) -> bool:
    """Whether ``keep`` keeps generation ``generation``'s weights in a chain of generations 0..``generations``
    (generation 0, the model every later evaluation and curation step scores under, and the last always)."""
    if keep == "all" or generation in (0, generations):
        return True
    if keep == "last":
        return False
    return generation % int(keep.split()[1]) == 0


#: files of a saved torch model that hold weights (what ``keep`` removes)
WEIGHT_FILES = ("model.pt", "model.safetensors", "adapter_model.safetensors", "state.npz")
#: torch dtypes of the ``weights_dtype`` setting
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


class TorchTarget(Target):
    max_block = 1  # one generation per job: train, generate and evaluate are separate jobs
    #: how messages name the target
    display: ClassVar[str] = ""

    def __init__(self, **params):
        super().__init__(**self.with_defaults(params))
        self.p = self.params

    # -- device ------------------------------------------------------------------------
    def _device(self) -> str:
        return resolve_device(self.p["device"])

    def threads(self, n: int, replicates: int) -> int:
        """The ``threads`` setting: torch's CPU threads in each of this target's jobs (see :func:`ouroboros.logs.run_job`)."""
        return int(self.p["threads"])

    def gpus(self) -> int:
        return gpus_for(self.p["device"])

    def device_name(self) -> str:
        return getattr(self, "device_used_", "cpu")

    def _record_device(self, device: str) -> None:
        self.device_used_ = device_label(device)

    # -- costs (ouroboros.costs) -----------------------------------------------------------
    def runtime_bytes(self) -> int:
        """Python, numpy and torch (about 400 MB resident once torch is imported, measured on CPU)."""
        return 520 * 2 ** 20

    def parameters(self) -> int:
        """Parameters of the network, counted on an empty (meta-device) copy: nothing is allocated.  The count is
        kept in :func:`ouroboros.paths.parameter_counts` under the target, its settings and the versions of the
        libraries that build the network, so a later dry run does not import them to count again (diffusers:
        4.5 s of a diffusion study's 8 s check)."""
        key = _count_key(self)
        counts = _read_counts()
        if key not in counts:
            import torch

            with torch.device("meta"):
                net = self._new_net()
            counts[key] = int(sum(p.numel() for p in net.parameters()))
            _write_counts(counts)
        return counts[key]

    def model_bytes(self) -> int:
        return 4 * self.parameters()

    def saved_model_bytes(self) -> int:
        """The weights in their ``weights_dtype`` on disk."""
        return {"fp32": 4, "bf16": 2, "fp16": 2}[self.p.get("weights_dtype", "fp32")] * self.parameters()

    def trained_parameters(self) -> int:
        return self.parameters()

    def activation_bytes(self) -> int:
        """One training batch's activations kept for the backward pass (0: small beside the weights)."""
        return 0

    def fit_bytes(self, n: int) -> int:
        """Gradients and Adam's two moments of every trained float32 parameter (12 bytes each: with the weights,
        4x the weights for a full fine-tune) and a batch's activations."""
        return 12 * self.trained_parameters() + self.activation_bytes()

    # -- chains ------------------------------------------------------------------------
    def check_experiment(self, n: int, replicates: int) -> Optional[str]:
        if replicates != 1:
            return f"the {self.display or self.name} runs one chain per job: set replicates: 1 (use seeds for repeats)"
        return self.check_data(n)

    def check_data(self, n: int) -> Optional[str]:
        """A message if n real training items cannot be had, else None."""
        return None

    # -- the fit: a template method ------------------------------------------------------------
    def fit(self, data, rng) -> "TorchTarget":
        """Every torch target's fit, in the style of scikit-learn's ``BaseMixture.fit``: the items
        (:meth:`_fit_items`), the device, one seed from the fit's stream that seeds torch, then the family's loop
        (:meth:`_train`, in :mod:`ouroboros.nets`); the trained network is kept on the CPU with its device, its
        loss curve and final loss.  (Threads are set per job by :func:`ouroboros.logs.run_job`.)"""
        import torch

        items = self._fit_items(data)
        device = self._device()
        seed = int(rng.integers(2**62))
        torch.manual_seed(seed)
        net, curve = self._train(items, seed, device)
        self.net_ = net.to("cpu").eval()
        self._record_device(device)
        self.curve_ = [(int(a), float(b)) for a, b in curve]
        self.final_loss_ = self._final_loss(curve)
        return self

    def _fit_items(self, data):
        """The training items as the loop takes them (default: replicate 0's items)."""
        return D.items(data, 0)

    def _train(self, items, seed: int, device: str):
        """The family's loop: (the trained network, its loss curve [(step, loss), ...]); torch is seeded with
        ``seed`` already (a loop seeds its own generator with ``seed + 1``)."""
        raise NotImplementedError

    def _final_loss(self, curve) -> float:
        """The loss the fit reports (default: the curve's last point)."""
        return float(curve[-1][1])

    def _autocast(self, device: str):
        """bf16 autocast on a GPU when the ``amp`` setting asks (a no-op elsewhere)."""
        return autocast(device, self.p.get("amp", False))

    # -- the network ----------------------------------------------------------------------
    def _new_net(self):
        raise NotImplementedError

    def saved_info(self) -> dict:
        """Extra entries of ``target.json``."""
        return {}

    def save_extra(self, directory: Path) -> None:
        """Extra files beside ``model.pt`` (e.g. the tokenizer)."""

    def load_extra(self, directory: Path) -> None:
        """Read what :meth:`save_extra` wrote (before the network is built)."""

    def saved_dtype(self):
        """The torch dtype the weights are written in (the ``weights_dtype`` setting; float32 where the target has
        none): floating tensors are cast on the way to disk, and cast back to float32 when loaded."""
        import torch

        return getattr(torch, DTYPES[self.p.get("weights_dtype", "fp32")])

    def saved_state(self) -> dict:
        """The network's state dict as it is written: floating tensors in :meth:`saved_dtype` (the state dict itself,
        with its module metadata, when that is float32)."""
        import torch

        state, dtype = self.net_.state_dict(), self.saved_dtype()
        if dtype == torch.float32:
            return state
        for k, v in state.items():
            if v.is_floating_point():
                state[k] = v.to(dtype)
        return state

    def save_weights(self, directory: Path) -> None:
        """The fitted network's files: ``model.pt`` (a state dict, in :meth:`saved_dtype`) and :meth:`save_extra`'s."""
        save_tensors(self.saved_state(), directory / "model.pt")
        self.save_extra(directory)

    def save(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.save_weights(directory)
        curve = getattr(self, "curve_", None)
        if curve:  # (step, loss): per epoch (VAE) or per optimiser step (LM); logged to MLflow as train_loss
            io.save_text(directory / "training_curve.csv",
                         "step,loss\n" + "".join(f"{int(a)},{float(b)!r}\n" for a, b in curve))
        io.save_json(directory / "target.json", {"target": self.name, "params": self.params,
                                                 "device": self.device_name(), **self.saved_info(),
                                                 **io.folder_record(directory, ("target.json",))})

    def _load_state(self, directory: Path) -> "TorchTarget":
        self.load_extra(directory)
        self.net_ = load_weights(self._new_net(), directory / "model.pt", self.name)
        self.device_used_ = io.load_json(directory / "target.json").get("device", "cpu")
        return self


# -- parameter counts kept between runs (TorchTarget.parameters) ------------------------------------------------
_COUNTS: dict = {}


def _count_key(target) -> str:
    versions = []
    for lib in ("torch", "diffusers"):
        try:
            versions.append(f"{lib}={metadata.version(lib)}")
        except metadata.PackageNotFoundError:
            pass
    text = json.dumps([type(target).__name__, target.p, versions, _code_digest()], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@functools.cache
def _code_digest() -> str:
    """The code that builds the networks (the targets' and the nets' modules): a change to it counts again."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for f in sorted((root / "nets").glob("*.py")) + sorted((root / "targets").glob("*.py")):
        digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def _read_counts() -> dict:
    if not _COUNTS:
        try:
            loaded = json.loads(Path(paths.parameter_counts()).read_text(encoding="utf-8"))
            _COUNTS.update({k: v for k, v in loaded.items() if isinstance(v, int) and v >= 0})
        except (OSError, ValueError, AttributeError):
            pass  # none yet, or unreadable: counted again
    return _COUNTS


def _write_counts(counts: dict) -> None:
    try:
        io.save_text(paths.parameter_counts(), json.dumps(counts, sort_keys=True) + "\n")
    except OSError:
        pass  # a read-only folder: counted again next time
