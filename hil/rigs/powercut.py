"""The hub's state directory on a disk the rig can cut the power of, and fill.

The state directory is a small ext4 filesystem in an image file (in
``/dev/shm``), on a loop device, mounted with a long journal commit interval
(``commit=600``) and lazy initialisation off (no background writes of its own).

**power_cut** (:meth:`StateDisk.power_cut`):

1. the hub is frozen (SIGSTOP, by the caller's ``freeze``), and so is a filler;
2. the image file is read until two reads in a row agree: a consistent copy of
   what the "disk" held at that instant. Only what the kernel had written to the
   loop device is in it; the inner filesystem's dirty pages (data written
   without fsync, metadata not yet committed by the journal) are not;
3. the hub is killed (``kill``), the old filesystem unmounted and its loop
   device detached (what it writes on the way out goes to the old image, which
   is thrown away);
4. the copy is attached to a new loop device and mounted on the same
   directory: ext4 replays its journal, as after a real power loss.

What it models: a machine that stops at one instant and boots from what its
disk holds. ``fsync``-ed data and committed journal transactions survive;
anything still in the page cache is lost. With ``commit=600`` the journal does
not commit on its own for ten minutes, so within that time only fsync (and the
kernel's own write-back of data older than ``dirty_expire_centisecs``, 30 s by
default, as on a Pi) makes a write durable: a harsher disk than a Pi's default
``commit=5``. Not modelled: the storage's own volatile cache and torn or
reordered sector writes inside one flush (the loop device's writes land in the
image file in order); other processes of the hub's machine (the serial
emulators, the broker) keep running, as the devices and the central would.
``blockdev --setro`` on the loop device does not stop writes reaching the image
on this kernel (it only warns), so the rig copies instead of freezing the device.

**disk_fill** (:meth:`StateDisk.fill`): a runaway writer (:class:`hil.harness.smallfs.Filler`)
fills the filesystem to the last block and keeps taking every block that comes
free (the hub's reserve too) until :meth:`StateDisk.free`. A power cut halts it
(it ran on the same machine); its file stays on the disk if the disk kept it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from hil.harness.smallfs import Filler, free_bytes

log = structlog.get_logger(__name__)

__all__ = ["CutReport", "DiskError", "StateDisk", "available"]

FILLER = ".hil-filler"
_CHUNK = 1 << 16


class DiskError(RuntimeError):
    """A disk operation failed (the message says which command and why)."""


def _run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise DiskError(f"{' '.join(cmd)}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip()


def available() -> str | None:
    """None when the state disk can be built here, else why not."""
    if os.geteuid() != 0:
        return "loop devices and mounts need root"
    for tool in ("losetup", "mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/dev/loop-control").exists():
        return "no /dev/loop-control (no loop devices)"
    return None


@dataclass(frozen=True)
class CutReport:
    """How a power cut went: reads until the copy was consistent, and how long the hub stood frozen."""

    reads: int
    frozen_s: float
    image_bytes: int


class StateDisk:
    """A small ext4 filesystem on a loop device, mounted at ``mountpoint``."""

    def __init__(self, mountpoint: Path, *, size_mb: int = 24, commit_s: int = 600, image_dir: Path | None = None) -> None:
        self.mountpoint = mountpoint
        self.size_mb = size_mb
        self.commit_s = commit_s
        shm = Path("/dev/shm")
        parent = image_dir or (shm if shm.is_dir() and os.access(shm, os.W_OK) else None)
        self.image_dir = Path(tempfile.mkdtemp(prefix="hil-disk-", dir=parent))
        self.image: Path | None = None
        self.device: str | None = None
        self.cuts = 0
        self._filler: Filler | None = None
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------

    def create(self) -> StateDisk:
        """Make the filesystem and mount it; :class:`DiskError` (nothing left mounted) if it cannot."""
        image = self.image_dir / "state-0.img"
        with open(image, "wb") as f:
            f.truncate(self.size_mb << 20)
        _run("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image))
        self._attach(image)
        return self

    def _attach(self, image: Path) -> None:
        self.image = image
        self.device = _run("losetup", "--find", "--show", str(image))
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        try:
            _run("mount", "-t", "ext4", "-o", f"commit={self.commit_s},noatime", self.device, str(self.mountpoint))
        except DiskError:
            self._detach()
            raise
        log.info("state_disk_mounted", device=self.device, image=str(image), mountpoint=str(self.mountpoint))

    def _detach(self) -> None:
        """Unmount (lazily if busy), detach the loop device, delete its image."""
        if self.device is None:
            return
        if os.path.ismount(self.mountpoint):
            proc = subprocess.run(["umount", str(self.mountpoint)], capture_output=True, text=True)
            if proc.returncode != 0:
                log.warning("state_disk_busy", mountpoint=str(self.mountpoint), error=proc.stderr.strip())
                subprocess.run(["umount", "-l", str(self.mountpoint)], capture_output=True)
        subprocess.run(["losetup", "-d", self.device], capture_output=True)
        if self.image is not None:
            self.image.unlink(missing_ok=True)
        self.device = self.image = None

    def teardown(self) -> None:
        """Stop a filler, unmount, detach, delete the images (again: a no-op)."""
        if self._closed:
            return
        self._closed = True
        if self._filler is not None:
            self._filler.halt()
            self._filler = None
        self._detach()
        shutil.rmtree(self.image_dir, ignore_errors=True)

    # --- the power cut ------------------------------------------------------------------

    def snapshot(self, attempts: int = 50) -> tuple[bytes, int]:
        """What the disk holds now: the image read until two reads agree; (bytes, reads)."""
        assert self.image is not None
        last = self.image.read_bytes()
        for n in range(2, attempts + 1):
            now = self.image.read_bytes()
            if now == last:
                return now, n
            last = now
        raise DiskError(f"the disk kept changing over {attempts} reads; no consistent copy")

    def power_cut(self, freeze: Callable[[], None], kill: Callable[[], None]) -> CutReport:
        """Cut the power: ``freeze`` the hub, copy the disk, ``kill`` the hub, mount the copy in its place."""
        t0 = time.monotonic()
        freeze()
        if self._filler is not None:  # it stops with the machine; closing its file writes nothing
            self._filler.halt()
            self._filler = None
        data, reads = self.snapshot()
        frozen_s = time.monotonic() - t0
        kill()
        self._detach()
        self.cuts += 1
        image = self.image_dir / f"state-{self.cuts}.img"
        _write_sparse(image, data)
        self._attach(image)
        report = CutReport(reads=reads, frozen_s=frozen_s, image_bytes=len(data))
        log.info("power_cut", reads=reads, frozen_ms=round(frozen_s * 1000, 1), device=self.device)
        return report

    # --- the full disk ------------------------------------------------------------------

    def fill(self) -> int:
        """Fill the filesystem to the last block and keep it full; the bytes taken."""
        if self._filler is None:
            before = free_bytes(self.mountpoint)
            self._filler = Filler(self.mountpoint / FILLER, runaway=True).start()
            log.info("disk_filled", mountpoint=str(self.mountpoint), took=before, free=free_bytes(self.mountpoint))
        return (self.mountpoint / FILLER).stat().st_size

    def free(self) -> None:
        """Give the space back (the filler's file deleted, also one left by a power cut)."""
        if self._filler is not None:
            self._filler.stop()
            self._filler = None
        (self.mountpoint / FILLER).unlink(missing_ok=True)
        log.info("disk_freed", mountpoint=str(self.mountpoint), free=free_bytes(self.mountpoint))


def _write_sparse(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` leaving all-zero chunks as holes."""
    zero = bytes(_CHUNK)
    with open(path, "wb") as f:
        for off in range(0, len(data), _CHUNK):
            chunk = data[off : off + _CHUNK]
            if chunk != zero[: len(chunk)]:
                f.seek(off)
                f.write(chunk)
        f.truncate(len(data))
