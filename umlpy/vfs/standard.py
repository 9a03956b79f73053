"""The guest's namespace at boot: a root file system and the kernel's own
mounts (/proc, /sys, /dev with /dev/pts and /dev/shm), as a Linux
distribution's early boot would set them up."""
from __future__ import annotations

import os
from typing import Optional

from umlpy.fs.devfs import DevFs
from umlpy.fs.hostfs import HostFs
from umlpy.fs.overlay import OverlayFs
from umlpy.fs.tmpfs import TmpFs
from umlpy.vfs.mount import MS_NODEV, MS_NOEXEC, MS_NOSUID
from umlpy.vfs.vfs import Vfs


def build_root(vfs: Vfs, root_dir: Optional[str], upper: Optional[str],
               readonly: bool = False) -> None:
    """The root: a host directory read-write (root_dir without upper), or an
    overlay of root_dir (default the host's /) read-only below a tmpfs or
    the host directory `upper`."""
    if root_dir is not None and upper is None:
        vfs.set_root(HostFs(root_dir, readonly=readonly), root_dir)
        return
    lower = HostFs(root_dir or "/", readonly=True, cache=True)
    if upper is not None:
        top = HostFs(upper)
        source = f"lowerdir={lower.host_dir},upperdir={top.host_dir}"
    else:
        top = TmpFs(mode=0o755, scratch_dir=vfs.scratch_dir("root-fifos"))
        source = f"lowerdir={lower.host_dir},upperdir=tmpfs"
    vfs.set_root(OverlayFs(lower, top, readonly=readonly, options=source), "overlay")


def mount_kernel_filesystems(vfs: Vfs, kernel) -> None:
    """/proc, /sys and /dev, each over whatever the root has there."""
    from umlpy.fs.devpts import DevPtsFs, PtyTable
    from umlpy.fs.procfs import ProcFs
    from umlpy.fs.sysfs import SysFs

    kernel.ptys = PtyTable()
    kernel.devpts = DevPtsFs(kernel)
    vfs.mount(ProcFs(kernel), "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    vfs.mount(SysFs(kernel), "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    vfs.mount(DevFs(scratch_dir=vfs.scratch_dir("dev-fifos")), "/dev", "udev", MS_NOSUID)
    vfs.mount(kernel.devpts, "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC)
    vfs.mount(TmpFs(scratch_dir=vfs.scratch_dir("shm-fifos")), "/dev/shm", "tmpfs",
              MS_NOSUID | MS_NODEV)


def host_cwd_in_guest(vfs: Vfs, root_dir: Optional[str]) -> str:
    """The guest cwd to start in: the host's cwd when it is visible in the guest."""
    here = os.getcwd()
    base = os.path.realpath(root_dir or "/")
    if base == "/":
        return here
    if here == base or here.startswith(base.rstrip("/") + "/"):
        return here[len(base.rstrip("/")):] or "/"
    return "/"
