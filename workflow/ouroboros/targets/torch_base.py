"""What the torch targets (VAE, LM) share: device choice and GPU declaration, one chain per job, and
saving a model as a state dict plus JSON hyperparameters (loaded with ``weights_only=True``: no pickle).

Subclasses build their network (a module-level ``nn.Module`` of ``ouroboros.nets``) in ``_new_net`` and
keep it, fitted, in ``net_``.  torch is imported only inside methods, so the registry can import every
target module without torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Optional

from ouroboros import io
from ouroboros.regimes import Regime
from ouroboros.targets.base import Target


class TorchTarget(Target):
    max_block = 1  # one generation per job: train, generate and evaluate are separate jobs
    #: how messages name the target
    display: ClassVar[str] = ""

    def __init__(self, **params):
        super().__init__(**self.with_defaults(params))
        self.p = self.params

    # -- device ------------------------------------------------------------------------
    def _device(self) -> str:
        from ouroboros.torchdev import resolve_device

        return resolve_device(self.p["device"])

    def threads(self, n: int, replicates: int) -> int:
        """The ``threads`` setting: torch's CPU threads in each of this target's jobs (see :func:`ouroboros.logs.run_job`)."""
        return int(self.p["threads"])

    def gpus(self) -> int:
        from ouroboros.torchdev import gpus_for

        return gpus_for(self.p["device"])

    def device_name(self) -> str:
        return getattr(self, "device_used_", "cpu")

    def _record_device(self, device: str) -> None:
        from ouroboros.torchdev import device_label

        self.device_used_ = device_label(device)

    # -- chains ------------------------------------------------------------------------
    def check(self, regime: Regime, n: int, replicates: int) -> Optional[str]:
        if replicates != 1:
            return f"the {self.display or self.name} runs one chain per job: set replicates: 1 (use seeds for repeats)"
        return self.check_data(n)

    def check_data(self, n: int) -> Optional[str]:
        """A message if n real training items cannot be had, else None."""
        return None

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

    def save_weights(self, directory: Path) -> None:
        """The fitted network's files: ``model.pt`` (a state dict) and :meth:`save_extra`'s."""
        from ouroboros.torchdev import save_state_dict

        save_state_dict(self.net_, directory / "model.pt")
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
                                                 "device": self.device_name(), **self.saved_info()})

    def _load_state(self, directory: Path) -> "TorchTarget":
        from ouroboros.torchdev import load_state_dict

        self.load_extra(directory)
        state = load_state_dict(directory / "model.pt")
        net = self._new_net()
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise io.IntermediateFileError(
                f"{directory / 'model.pt'} does not fit the {self.name} model described by {directory / 'target.json'} "
                f"({str(exc).splitlines()[0]})", directory) from exc
        self.net_ = net.eval()
        self.device_used_ = io.load_json(directory / "target.json").get("device", "cpu")
        return self
