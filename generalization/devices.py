"""The one place a device name (``auto``, ``cpu``, ``cuda``, ``cuda:N``) becomes a :class:`torch.device`."""

from __future__ import annotations

from .files import DataError

__all__ = ["resolve_device"]


def resolve_device(device: str | None = "auto", local_rank: int | None = None):
    """The :class:`torch.device` for ``device``.

    ``auto`` (or None) is the GPU when CUDA is available, else the CPU. With ``local_rank`` (a process of a
    ``torchrun`` launch) ``auto`` and ``cuda`` mean that process's GPU, ``cuda:<local_rank>``. Asking for a
    GPU that is not there raises :class:`~generalization.files.DataError` naming it.
    """
    import torch

    name = "auto" if device is None else str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and local_rank is not None:
        name = f"cuda:{local_rank}"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DataError(f"--device {device}: no CUDA device available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            where = f"local rank {local_rank} needs" if local_rank is not None else "asked for"
            raise DataError(
                f"--device {device}: {where} GPU {dev.index}, this machine has {torch.cuda.device_count()}"
                + (" (use --nproc-per-node <= the GPU count)" if local_rank is not None else "")
            )
    return dev
