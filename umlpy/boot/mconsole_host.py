"""What the mconsole commands do to a running machine (the kernel's side of
umlpy/drivers/mconsole*.py). Every method runs on the mconsole thread: each
acts through calls that are safe there (signals to guest processes, the
kernel log, reads of the VFS); hot-plugging a ubd device takes the kernel's
device lock."""
from __future__ import annotations

import errno
import os
import signal
import stat as st
from typing import Optional

import umlpy
from umlpy.block.errors import BlockError
from umlpy.block.options import is_ubd_option, parse_ubd_option
from umlpy.drivers.mconsole import MconsoleCommandError, format_version
from umlpy.host import procinfo
from umlpy.kernel.klog import KERN_INFO
from umlpy.vfs.mount import names_changed

SYSRQ_HELP = ("sysrq: HELP : loglevel(0-9) reboot(b) crash(c) terminate-all-tasks(e) "
              "kill-all-tasks(i) show-memory-usage(m) sync(s) show-task-states(t) "
              "unmount(u)")


class MachineConsole:
    def __init__(self, kernel) -> None:
        self.kernel = kernel

    # ---- identity and power ----
    def version(self) -> str:
        k = self.kernel
        return format_version("Linux", k.hostname, umlpy.RELEASE,
                              f"#1 SMP umlpy {umlpy.__version__}", "x86_64")

    def halt(self) -> None:
        self.kernel.shutdown("halt")

    def reboot(self) -> None:
        self.kernel.shutdown("restart")

    def cad(self) -> None:
        """Ctrl-Alt-Del: a restart, or SIGINT to init once init said reboot(CAD_OFF)."""
        k = self.kernel
        if k.cad_reboots:
            k.shutdown("restart")
        elif k.init is not None:
            os.kill(k.init.host_tgid, signal.SIGINT)

    def stop(self) -> None:
        self._signal_all(signal.SIGSTOP)

    def go(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: int, spare_init: bool = False) -> int:
        k = self.kernel
        return k.signal_all(sig, spare=(k.init,) if spare_init else ())

    # ---- sysrq ----
    def sysrq(self, key: str) -> str:
        k = self.kernel
        key = key.strip()[:1]
        if key == "s":
            k.vfs.sync()
            text = "sysrq: Emergency Sync\nEmergency Sync complete"
        elif key == "u":
            k.vfs.sync()
            for m in k.vfs.mounts:
                m.flags |= 1                # MS_RDONLY
            k.tracer.fstat_forget()         # C may no longer change attributes
            text = "sysrq: Emergency Remount R/O\nEmergency Remount complete"
        elif key == "b":
            k.shutdown("restart")
            text = "sysrq: Resetting"
        elif key == "e":
            self._signal_all(signal.SIGTERM, spare_init=True)
            text = "sysrq: Terminate All Tasks"
        elif key == "i":
            self._signal_all(signal.SIGKILL, spare_init=True)
            text = "sysrq: Kill All Tasks"
        elif key == "t":
            text = "sysrq: Show State\n" + self._task_states()
        elif key == "m":
            text = "sysrq: Show Memory\n" + self.proc("meminfo").decode()
        elif key.isdigit():
            k.kmsg.console_level = int(key)
            text = f"sysrq: Changing Loglevel\nLoglevel set to {key}"
        else:
            text = SYSRQ_HELP
        k.kmsg.printk(text, KERN_INFO)
        return text

    def _task_states(self) -> str:
        lines = [f"{'task':<16}{'PID':>7}{'PPID':>7}  state"]
        for g in sorted(self.kernel.pids.live_groups(), key=lambda g: g.tgid):
            try:
                status = self.kernel_proc(g.host_tgid, "stat").split(b") ", 1)[1][:1].decode()
            except (OSError, IndexError):
                status = "?"
            lines.append(f"{g.comm:<16}{g.tgid:>7}{g.ppid:>7}  {status}")
        return "\n".join(lines)

    @staticmethod
    def kernel_proc(host_tid: int, name: str) -> bytes:
        return procinfo.read_proc_file(host_tid, name)

    # ---- devices ----
    def config(self, spec: str) -> str:
        k = self.kernel
        spec = spec.strip()
        if not is_ubd_option(spec):
            raise MconsoleCommandError(f"config: unknown device in '{spec}'")
        try:
            ubd_spec = parse_ubd_option(spec)
            unit = k.ubd.add(ubd_spec)
        except (BlockError, ValueError, OSError) as e:
            raise MconsoleCommandError(str(e)) from None
        devdir = k.vfs.lookup("/dev").must_exist().inode
        try:
            devdir.mknod(unit.name, st.S_IFBLK | 0o660, unit.rdev, 0, 6)
        except FileExistsError:
            pass
        names_changed(structural=False)     # a guest walk may have cached its absence
        k.kmsg.printk(f"{unit.name}: {unit.device.size} bytes ({ubd_spec.config_string()})")
        return ""

    def config_query(self, dev: str) -> str:
        unit = self._unit(dev)
        return unit.spec.config_string()

    def remove(self, dev: str) -> Optional[str]:
        k = self.kernel
        unit = self._unit(dev)
        try:
            k.ubd.remove(unit.index)
        except OSError as e:
            raise MconsoleCommandError(e.strerror or str(e)) from None
        try:
            k.vfs.lookup("/dev").must_exist().inode.unlink(unit.name)
        except OSError:
            pass
        names_changed()
        return None

    def _unit(self, dev: str):
        dev = dev.strip()
        table = getattr(self.kernel, "ubd", None)
        if table is not None and dev.startswith("ubd"):
            for unit in table:
                if dev in (unit.spec.label, unit.name, f"ubd{unit.index}"):
                    return unit
        raise MconsoleCommandError(f"{dev}: no such device")

    # ---- the rest ----
    def log(self, text: str) -> None:
        if text.strip():
            self.kernel.kmsg.printk(text.rstrip("\n"))

    def proc(self, path: str) -> bytes:
        """A guest /proc file, as the guest would read it."""
        k = self.kernel
        path = path.strip().lstrip("/")
        try:
            inode = k.vfs.lookup("/proc/" + path).must_exist().inode
            fd = inode.open(os.O_RDONLY)
        except OSError:
            raise MconsoleCommandError("Failed to open file") from None
        try:
            return procinfo.read_fd(fd)
        finally:
            os.close(fd)

    def stack(self, pid: int) -> str:
        k = self.kernel
        host = k.pids.to_host(pid)
        if host is None:
            raise MconsoleCommandError("Couldn't find that pid")
        try:
            syscall = self.kernel_proc(host, "syscall").decode().split()
            wchan = self.kernel_proc(host, "wchan").decode()
        except OSError:
            raise MconsoleCommandError("Couldn't find that pid") from None
        return f"pid {pid}: syscall {syscall[0] if syscall else '?'}, waiting in {wchan or '-'}"

    def gdb(self, pid: int, port: int) -> str:
        from umlpy.debug.session import gdb_attach
        try:
            return gdb_attach(self.kernel, pid, port)
        except (LookupError, ValueError) as e:
            raise MconsoleCommandError(str(e).strip("'\"")) from None
        except OSError as e:
            raise MconsoleCommandError(f"gdb: port {port}: {e.strerror or e}") from None


def start_mconsole(kernel, config, log):
    """The machine's mconsole socket, started; None when it cannot be made (said in the log)."""
    from umlpy.drivers.mconsole import MconsoleError, MconsoleServer
    try:
        server = MconsoleServer(config.umid or "", config.uml_dir, MachineConsole(kernel))
    except MconsoleError as e:
        raise OSError(errno.EADDRINUSE, str(e)) from None
    server.start()
    log(f"mconsole (version 2) initialized on {server.socket_path}")
    if config.mconsole_notify:
        server.notify(config.mconsole_notify)
    return server

