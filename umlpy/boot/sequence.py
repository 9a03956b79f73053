"""The boot: from a BootConfig to a running guest, as UML boots.

1. Plug in the ubd devices (each opened and locked; a bad one stops the boot
   with one line).
2. Mount the root: a host directory (rootfstype=hostfs) or the file system on
   the root's ubd device, read-only unless `rw`.
3. Mount /proc, /sys, /dev (with /dev/ubdX nodes), /dev/pts and /dev/shm.
4. Run init as pid 1 (init=, else /sbin/init, /etc/init, /bin/init, /bin/sh,
   Linux's order), with Linux's initial environment, on the console.
5. When the guest halts or powers off (reboot(2)) umlpy exits 0; a restart
   boots again unless `noreboot`. When init exits, Linux panics: umlpy says so
   and exits with init's status.
"""
from __future__ import annotations

import os
import stat as st
import sys
from typing import List, Optional

import umlpy
from umlpy.block.errors import BlockError
from umlpy.boot.options import BootConfig
from umlpy.kernel.klog import KERN_EMERG, KERN_NOTICE, KernelLog
from umlpy.boot.mconsole_host import start_mconsole
from umlpy.drivers.console import ConsoleError, Consoles
from umlpy.kernel.memory import OomWatcher

INIT_CANDIDATES = ("/sbin/init", "/etc/init", "/bin/init", "/bin/sh")


class BootError(Exception):
    """Why the machine cannot boot: one line for the user."""


def boot(config: BootConfig, notes: List[str], cpu: Optional[int]) -> int:
    """Boot until the guest halts; returns umlpy's exit status."""
    while True:
        kind, status = _boot_once(config, notes, cpu)
        if kind == "restart" and not config.noreboot:
            notes = []
            continue
        if kind in ("halt", "poweroff", "restart"):
            return 0
        return status


def _boot_once(config: BootConfig, notes: List[str], cpu: Optional[int]):
    from umlpy.cli import report_status, serve
    from umlpy.drivers.ubd import UbdTable
    from umlpy.kernel.kernel import Kernel
    from umlpy.net import setup as net_setup
    from umlpy.net.policy import NetError
    from umlpy.vfs import standard
    from umlpy.vfs.vfs import Vfs

    if config.initrd:
        raise BootError(f"initrd={config.initrd}: initial ramdisks are not supported; "
                        "boot the root file system directly (ubd0= or rootfstype=hostfs)")
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    os.umask(0)
    klog = KernelLog(sys.stdout if _console_is_stdio(config) else None, quiet=config.quiet)
    klog.printk(f"Linux version {umlpy.RELEASE} (umlpy {umlpy.__version__}) #1 SMP",
                KERN_NOTICE)
    klog.printk("Kernel command line: " + " ".join(config.command_line), KERN_NOTICE)
    for note in notes:
        klog.printk(note, KERN_NOTICE)
    ubd = UbdTable()
    vfs = Vfs()
    kernel = None
    try:
        for spec in sorted(config.ubd.values(), key=lambda s: s.index):
            try:
                unit = ubd.add(spec)
            except BlockError as e:
                raise BootError(str(e)) from None
            klog.printk(f"ubd{'abcdefghijklmnop'[spec.index]}: {unit.device.size} bytes "
                        f"({spec.config_string()})", KERN_NOTICE)
        _mount_root(vfs, ubd, config, klog)
        kernel = Kernel(vfs, hostname=config.hostname or "umlpy", klog=klog)
        kernel.ubd = ubd
        kernel.init_protected = True
        kernel.cmdline = " ".join(config.command_line)
        kernel.mem_limit = config.mem
        oom = OomWatcher(kernel, config.mem)
        standard.mount_kernel_filesystems(vfs, kernel)
        try:
            net_setup.attach(kernel, net_setup.config_from_boot(config))
        except NetError as e:
            raise BootError(str(e)) from None
        devdir = vfs.lookup("/dev").must_exist().inode
        ubd.add_nodes(devdir)
        consoles = kernel.consoles = Consoles(config.consoles, klog.printk)
        consoles.add_nodes(devdir)
        init = _find_init(vfs, config)
        argv = [init] + list(config.init_args)
        env = [f"{k}={v}" for k, v in config.init_env.items()]
        klog.printk(f"Run {init} as init process", KERN_NOTICE)
        try:
            console_fd = consoles.console_fd()
        except (ConsoleError, OSError) as e:
            raise BootError(f"con0: {e}") from None
        if console_fd >= 0:         # kernel messages go to the console line from now on
            klog.console = os.fdopen(os.dup(console_fd), "w", buffering=1)
        try:
            mconsole = start_mconsole(kernel, config, klog.printk)
        except OSError as e:
            raise BootError(str(e.strerror or e)) from None
        kernel.start(init, argv, env, "/", console_fd=console_fd)
        net_setup.started(kernel)
        oom.start()
        try:
            status = serve(kernel)
        finally:
            oom.stop()
            mconsole.close()
        if kernel.shutdown_kind is not None:
            return kernel.shutdown_kind, 0
        klog.printk("Kernel panic - not syncing: Attempted to kill init! "
                    f"exitcode={status:#06x}", KERN_EMERG)
        return None, report_status(status)
    finally:
        if kernel is not None:
            net_setup.detach(kernel)
            kernel.close()
            if getattr(kernel, "consoles", None) is not None:
                kernel.consoles.close()
        vfs.close()
        ubd.close()


def _console_is_stdio(config: BootConfig) -> bool:
    line = config.consoles.console(0)
    return line.exists and line.output is not None and line.output.kind == "fd"


def _mount_root(vfs, ubd, config: BootConfig, klog: KernelLog) -> None:
    from umlpy.fs.hostfs import HostFs
    readonly = config.read_only_root
    if config.rootfstype == "hostfs":
        base = os.path.realpath(config.hostfs or "/")
        rel = (config.rootflags or "").lstrip("/")
        where = os.path.join(base, rel) if rel else base
        if not os.path.isdir(where):
            raise BootError(f"rootflags={config.rootflags}: {where} is not a directory")
        vfs.set_root(HostFs(where, readonly=readonly), where, 1 if readonly else 0)
        klog.printk(f"VFS: Mounted root (hostfs filesystem) {'readonly' if readonly else ''} "
                    f"on {where}", KERN_NOTICE)
        return
    index = config.root_ubd_index
    unit = ubd.get(index) if index is not None else None
    if unit is None:
        raise BootError(f"root={config.root}: no such device")
    from umlpy.kernel.blockmount import mount_block_fs
    try:
        fs = mount_block_fs(unit, config.rootfstype, readonly, klog)
    except OSError as e:
        raise BootError(f"root={config.root}: {e.strerror or e}") from None
    vfs.set_root(fs, f"/dev/{unit.name}", 1 if readonly or fs.readonly else 0)
    klog.printk(f"VFS: Mounted root ({fs.type_name} filesystem) "
                f"{'readonly' if readonly or fs.readonly else ''} on device 98:{index * 16}",
                KERN_NOTICE)


def _find_init(vfs, config: BootConfig) -> str:
    candidates = [config.init] if config.init else list(INIT_CANDIDATES)
    for path in candidates:
        try:
            a = vfs.lookup(path).must_exist().inode.getattr()
        except OSError:
            continue
        if st.S_ISREG(a.mode) and a.mode & 0o111:
            return path
    if config.init:
        raise BootError(f"init={config.init}: no such executable in the root file system")
    raise BootError("No working init found. Try passing init= option to kernel.")
