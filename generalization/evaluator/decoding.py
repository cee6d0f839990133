"""Decode once: every image of a test set read and decoded once, resized/cropped once per preprocessing.

:func:`decode_groups` turns a test set (or one rank's shard of it) into one uint8 N x 3 x S x S array per
distinct ``Preprocess.decode_key`` (in memory, or a memory-mapped file under ``cache_dir`` when larger than
``max_memory_bytes``); every model of a group then runs over that array (normalisation is a per-batch affine
map, applied per model, see :func:`~generalization.evaluator.decode.normalize`). Files are read and decoded in
a thread pool (or DataLoader processes), JPEGs on the GPU with nvJPEG when the device is CUDA.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import DataError
from .datasets import ImageSet
from .decode import BadImageError, Preprocess, decode_rgb, read_image_bytes, resize_crop

__all__ = ["DecodedImages", "decode_groups", "decode_images", "iter_batches", "progress_bar"]


def progress_bar(total: int, desc: str, enabled: bool | None, unit: str = "img"):
    """A tqdm bar on stderr: shown when ``enabled``, or (``None``) when stderr is a terminal."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=enabled is False or (enabled is None and not sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
    )


@dataclass
class DecodedImages:
    """uint8 N x 3 x S x S images of one test set for one decode key, plus the rows kept."""

    images: torch.Tensor  # on CPU (or on the GPU when decoded there and it fits)
    keep: np.ndarray  # row indices (into the test set) of the decoded images
    bad: list[str] = field(default_factory=list)  # "path: reason" of skipped images
    seconds: float = 0.0
    cache_file: Path | None = None

    def __len__(self) -> int:
        return len(self.keep)

    def release(self) -> None:
        self.images = torch.empty(0, dtype=torch.uint8)
        if self.cache_file is not None:
            self.cache_file.unlink(missing_ok=True)


class _FileDataset(torch.utils.data.Dataset):
    """Reads one image and (on the CPU) decodes it once and resizes/crops it for every preprocessing.

    Returns ``(index, [tensor per preprocessing] | encoded bytes | error string)``.
    """

    def __init__(self, paths: Sequence[Path], pres: Sequence[Preprocess], decode: bool) -> None:
        self.paths, self.pres, self.decode = list(paths), list(pres), decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            data = read_image_bytes(path)
            if not self.decode:
                return i, data
            img = decode_rgb(data, path)
            return i, [resize_crop(img, pre).contiguous() for pre in self.pres]
        except (BadImageError, DataError) as e:
            return i, str(e)


def _collate(items):
    return items


def _decode_batches(
    dataset: _FileDataset, batch_size: int, num_workers: int, threads: int | None
) -> Iterator[list]:
    """Batches of ``dataset`` items in order: from ``num_workers`` DataLoader processes when > 0, else from a
    pool of ``threads`` threads (default: torch's intra-op thread count).

    Threads are the cheaper choice: the torchvision decoders and the uint8 resize release the GIL, and nothing
    is pickled between processes (measured on 2 cores: 300 photos/s in one thread, 610 in two).
    """
    if num_workers > 0:
        yield from torch.utils.data.DataLoader(
            dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=_collate
        )
        return
    threads = max(1, threads or torch.get_num_threads())
    if threads == 1:
        for start in range(0, len(dataset), batch_size):
            yield [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads, thread_name_prefix="decode") as pool:
        # one batch ahead: the pool decodes the next batch while this one is copied out
        pending = None
        for start in range(0, len(dataset) + batch_size, batch_size):
            nxt = None
            if start < len(dataset):
                nxt = pool.map(dataset.__getitem__, range(start, min(start + batch_size, len(dataset))))
            if pending is not None:
                yield list(pending)
            pending = nxt


def _decode_on_gpu(items, paths, pres, device) -> list[list[torch.Tensor] | str]:
    """nvJPEG decode of a batch of encoded images (files nvJPEG refuses go through the CPU decoder)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    out: list = [None] * len(items)
    jpeg = [
        k
        for k, (_, d) in enumerate(items)
        if not isinstance(d, str) and bytes(d[:3].tolist()) == b"\xff\xd8\xff"
    ]
    if jpeg:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                decoded = decode_jpeg([items[k][1] for k in jpeg], mode=ImageReadMode.RGB, device=device)
            for k, img in zip(jpeg, decoded, strict=True):
                out[k] = img
        except RuntimeError:
            pass  # decode them one by one below
    for k, (i, d) in enumerate(items):
        if isinstance(d, str):
            out[k] = d
        elif out[k] is None:
            try:
                out[k] = decode_rgb(d, paths[i], device)
            except BadImageError as e:
                out[k] = str(e)
    return [o if isinstance(o, str) else [resize_crop(o, pre) for pre in pres] for o in out]


def decode_groups(
    ds: ImageSet,
    pres: Sequence[Preprocess],
    *,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    num_workers: int = 0,
    decode_threads: int | None = None,
    skip_bad: bool = False,
    max_memory_bytes: int = 4 << 30,
    cache_dir: str | os.PathLike | None = None,
    progress: bool | None = None,
) -> dict[tuple, DecodedImages]:
    """Decode every image of ``ds`` once, and resize/centre-crop it for each distinct ``decode_key`` of ``pres``.

    Returns ``{decode_key: DecodedImages}``. A bad image raises :class:`~generalization.evaluator.decode.BadImageError`
    naming it, unless ``skip_bad``: then it is left out and listed in ``DecodedImages.bad``. Files are read and
    decoded by ``num_workers`` DataLoader processes when > 0, else by ``decode_threads`` threads (default:
    torch's intra-op thread count). When the uint8 arrays together exceed ``max_memory_bytes`` they go to
    memory-mapped files in ``cache_dir`` (deleted by :meth:`DecodedImages.release`).
    """
    device = torch.device(device)
    t0 = time.perf_counter()
    uniq: dict[tuple, Preprocess] = {}
    for pre in pres:
        uniq.setdefault(pre.decode_key, pre)
    n = len(ds)
    if ds.pixels is not None:  # already decoded arrays (CIFAR): a view, resized only if a model asks for it
        out = {}
        base = torch.from_numpy(ds.pixels).permute(0, 3, 1, 2)
        for key, pre in uniq.items():
            images = resize_crop(base.contiguous(), pre) if pre.resize_size is not None else base
            if images.shape[-2:] != (pre.input_size, pre.input_size):
                raise DataError(
                    f"{ds.name}: images are {tuple(images.shape[-2:])}, the model needs "
                    f"{pre.input_size} x {pre.input_size}"
                )
            out[key] = DecodedImages(images, np.arange(n), [], time.perf_counter() - t0)
        return out

    on_gpu = device.type == "cuda"
    total = sum(n * 3 * p.input_size**2 for p in uniq.values())
    bufs: dict[tuple, torch.Tensor] = {}
    files: dict[tuple, Path] = {}
    for key, pre in uniq.items():
        s = pre.input_size
        if total <= max_memory_bytes:
            # channels-last (N x S x S x 3 in memory), the layout the models take: cheaper to normalise
            bufs[key] = torch.empty(
                (n, 3, s, s),
                dtype=torch.uint8,
                device=device if on_gpu else "cpu",
                memory_format=torch.channels_last,
            )
        else:
            cache_root = Path(cache_dir or ".")
            cache_root.mkdir(parents=True, exist_ok=True)
            files[key] = (
                cache_root / f".decode-{ds.name}-{s}-{pre.resize_size}-{pre.interpolation}-{os.getpid()}.npy"
            )
            mm = np.lib.format.open_memmap(files[key], mode="w+", dtype=np.uint8, shape=(n, s, s, 3))
            bufs[key] = torch.from_numpy(mm).permute(0, 3, 1, 2)  # a channels-last view
    keys = list(uniq)
    ok = np.zeros(n, dtype=bool)
    bad: list[str] = []
    loader = _decode_batches(
        _FileDataset(ds.paths, list(uniq.values()), decode=not on_gpu),
        batch_size,
        num_workers,
        decode_threads,
    )
    bar = progress_bar(n, f"decode {ds.name} ({len(keys)} size(s))", progress)
    try:
        for items in loader:
            imgs = (
                _decode_on_gpu(items, ds.paths, list(uniq.values()), device)
                if on_gpu
                else [d for _, d in items]
            )
            for (i, _), per_key in zip(items, imgs, strict=True):
                if isinstance(per_key, str):
                    if not skip_bad:
                        raise BadImageError(per_key + " (use --skip-bad-images to skip and count such files)")
                    bad.append(per_key)
                    continue
                for key, img in zip(keys, per_key, strict=True):
                    bufs[key][i] = img.to(bufs[key].device)
                ok[i] = True
            bar.update(len(items))
    except BaseException:
        bufs.clear()
        for f in files.values():
            f.unlink(missing_ok=True)
        raise
    finally:
        loader.close()
        bar.close()
    keep = np.flatnonzero(ok)
    seconds = time.perf_counter() - t0
    sel = None if len(keep) == n else torch.from_numpy(keep)
    return {
        key: DecodedImages(
            buf if sel is None else buf[sel.to(buf.device)], keep, list(bad), seconds, files.get(key)
        )
        for key, buf in bufs.items()
    }


def decode_images(ds: ImageSet, pre: Preprocess, **kwargs) -> DecodedImages:
    """:func:`decode_groups` for one preprocessing."""
    return decode_groups(ds, [pre], **kwargs)[pre.decode_key]


def iter_batches(decoded: DecodedImages, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """``(row positions within decoded, uint8 batch)`` in order."""
    for start in range(0, len(decoded), batch_size):
        stop = min(start + batch_size, len(decoded))
        yield np.arange(start, stop), decoded.images[start:stop]
