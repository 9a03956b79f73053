"""The kernel: one guest system, its event loop and syscall dispatch.

The accelerator delivers events (a seccomp notification, a ptrace stop, a
task's birth or death); the kernel looks the syscall up in the table and runs
its handler. A handler that raises anything but OSError is an oops: the
traceback goes to the kernel log and that guest process is killed, while the
kernel and every other task go on.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
import threading
from typing import List, Optional

import umlpy.syscalls  # noqa: F401  (registers every handler)
from umlpy.host import tracer as host
from umlpy.kernel import births, lifecycle, orphans
from umlpy.kernel.contexts import Contexts
from umlpy.kernel.fds import Fds
from umlpy.kernel.klog import KERN_ALERT, KernelLog
from umlpy.kernel.exec_cache import ExecCache
from umlpy.kernel.loader import Loader
from umlpy.kernel.task import Creds, FsContext, PidNamespace, Task, ThreadGroup
from umlpy.syscalls import registry, statcache
from umlpy.syscalls.call import PASS, Call, Deferred, Fd, s64
from umlpy.syscalls.numbers import name_of


ERESTART_CODES = (512, 513, 514, 516)   # -ERESTARTSYS .. -ERESTART_RESTARTBLOCK


def _traceback_text() -> str:
    """The exception being handled, as the kernel log shows it (traceback is
    imported only at an oops: it pulls in linecache and tokenize)."""
    import traceback
    return traceback.format_exc().rstrip()


class Kernel:
    def __init__(self, vfs, hostname: str = "umlpy", klog: Optional[KernelLog] = None) -> None:
        self.vfs = vfs
        # the kernel log (dmesg); without a boot console, messages go to stderr as "umlpy: ..."
        self.kmsg = klog if klog is not None else KernelLog(sys.stderr, prefix="umlpy: ")
        self.shutdown_kind: Optional[str] = None   # "halt", "poweroff", "restart"
        self.cad_reboots = True     # Ctrl-Alt-Del restarts (reboot(CAD_ON)), else SIGINT to init
        self.tracer = host.Tracer()
        self.pids = PidNamespace()
        self.contexts = Contexts()
        self.keeper = None      # umlpy.host.keeper.Keeper: holds the exec images
        self.loader = Loader(vfs, os.path.join(vfs.scratch, "exec"), self.get_keeper)
        self.exec_cache = ExecCache(self.tracer)
        self.loader.on_forget = self.exec_cache.forget
        self.fds = Fds(self)
        vfs.handles.gc_hook = self.fds.live_keys
        self.current: Optional[Task] = None     # the task whose syscall is being served
        self.hostname = hostname
        self.domainname = "(none)"
        self.init: Optional[ThreadGroup] = None
        self.init_status: Optional[int] = None
        self.early_stops: dict = {}      # host tid -> when its first stop came, before its parent's event
        self.orphans_checked = 0.0       # when orphans.settle last looked
        self.warned: set = set()
        self.oopses = 0
        self.shutting_down = False
        self.systrace = None    # umlpy.debug.trace.SyscallTrace under --trace/--stats
        self.waiting: dict = {}     # notif id -> Deferred with a cancel, while its worker runs
        self._debugger = None
        self.tracer.set_task_limit(births.MAX_TASKS)
        if os.environ.get("UMLPY_NO_FAST_STOPS"):
            self.tracer.block_fast_stops("environment")
        if os.environ.get("UMLPY_NO_FAST_STATS"):
            self.tracer.publish_stats = False       # (to compare: every stat goes to Python)

    @property
    def debugger(self):
        """The umlpy.debug.gdbstub hooks under --gdb (or an mconsole `gdb`), or None."""
        return self._debugger

    @debugger.setter
    def debugger(self, hooks) -> None:
        self._debugger = hooks
        self.tracer.block_fast_stops("gdb", hooks is not None)   # gdb sees every stop

    # ---- boot ----
    def start(self, path: str, argv: List[str], env: List[str], cwd: str = "/",
              console_fd: int = -1) -> None:
        """Run the first process: its execve of the guest path `path` is the
        first syscall the kernel serves. console_fd: its terminal (boot)."""
        root = self.vfs.root_path()
        lk = self.vfs.lookup(cwd, root, root)
        fsctx = FsContext(lk.path if lk.path is not None and lk.path.inode.is_dir() else root, root)
        creds = Creds()
        pid = self.tracer.spawn(path, argv, env, registry.build_filter(), console_fd)
        tgid = self.pids.alloc(pid)
        group = ThreadGroup(tgid, pid, None)
        group.comm = os.path.basename(path)[:15]
        task = Task(tgid, pid, group, creds, fsctx)
        task.started = True
        group.threads[pid] = task
        self.pids.groups[tgid] = group
        self.pids.tasks[pid] = task
        self.init = group
        self.mirror(task)

    def run(self) -> int:
        """Serve the guest until its first process and every other are gone.
        Returns the first process's raw wait status."""
        while True:
            ev = self.tracer.next_event()
            if self.tracer.reaps_waiting():     # (before a new task takes a host pid again)
                for host_pid in self.tracer.take_reaps():
                    lifecycle.reaped(self, host_pid)
            if self.tracer.creates_waiting():          # (before the changes made to them)
                statcache.adopt_creates(self)
            if self.tracer.opens_waiting():
                statcache.adopt_opens(self)
            if self.tracer.attr_changes_waiting():
                statcache.adopt_attr_changes(self)
            if self.tracer.execs_waiting():
                self.exec_cache.adopt(self)
            if ev.kind == host.EV_NONE:
                break
            if ev.kind == host.EV_ADOPT:
                continue                # (done above)
            if ev.kind == host.EV_INTR:
                if self.debugger is not None:
                    self.debugger.service()     # requests from the gdb stub's thread
                if self.early_stops:
                    orphans.settle(self)
                continue
            self.dispatch(ev)
            if self.early_stops:
                orphans.settle(self)
            if self.init_status is not None and not self.pids.tasks and not self.early_stops:
                break
        return self.init_status if self.init_status is not None else 0

    def get_keeper(self):
        """The keeper of exec images, started at the first exec (--net=none
        starts it earlier, in the instance's network namespace)."""
        if self.keeper is None:
            from umlpy.host.keeper import Keeper
            self.keeper = Keeper()
        return self.keeper

    def close(self) -> None:
        self.fds.close()
        self.exec_cache.close()
        self.loader.close()
        if self.keeper is not None:
            self.keeper.close()
        self.tracer.close()

    # ---- the fast-path mirror ----
    def mirror(self, task: Task) -> None:
        c = task.creds
        self.tracer.task_set(task.host_tid, task.tid, task.group.tgid, task.group.ppid,
                             c.ruid, c.euid, c.rgid, c.egid, c.fsuid, c.fsgid,
                             self.contexts.id_of(task), task.group.children_for_accel())

    def mirror_group(self, group: ThreadGroup) -> None:
        for t in group.threads.values():
            self.mirror(t)

    def mirror_children(self, group: ThreadGroup) -> None:
        """The group's count of children changed (lifecycle.py)."""
        count = group.children_for_accel()
        for t in group.threads.values():
            self.tracer.task_children(t.host_tid, count)

    def mirror_sharers(self, fs: Optional[FsContext] = None) -> None:
        """A cwd or root changed: mirror every task sharing that FsContext
        (CLONE_FS), or every task (None), for its new resolution context."""
        for t in self.pids.tasks.values():
            if fs is None or t.fs is fs:
                self.mirror(t)

    # ---- dispatch ----
    def dispatch(self, ev) -> None:
        k = ev.kind
        if k == host.EV_NOTIF:
            self.on_notif(ev)
            return
        try:
            if k == host.EV_SECCOMP:
                self.on_seccomp(ev)
            elif k == host.EV_SYSEXIT:
                self.on_sysexit(ev)
            else:
                lifecycle.on_event(self, ev)
        except host.HostError as e:
            if e.errno != errno.ESRCH:
                raise
            # A SIGKILL took the task out of its ptrace stop while we handled
            # it (kill -9, exit_group of another thread, halt): its death
            # event follows; what was under way for it is void.
            task = self.pids.tasks.get(ev.tid)
            if task is not None:
                task.pending_call = None

    @staticmethod
    def memory(task: Task) -> host.GuestMemory:
        mem = task.mem
        if mem is None or mem.pid != task.host_tid:
            mem = task.mem = host.GuestMemory(task.host_tid)
        return mem

    def resume(self, task: Task, sig: int = 0) -> None:
        """Let a ptrace-stopped task run, stopping at its syscall's exit if one is pending."""
        if task.pending_call is not None:
            self.tracer.cont_to_exit(task.host_tid, sig)
        else:
            self.tracer.cont(task.host_tid, sig)

    def unknown(self, call: Call) -> int:
        name = name_of(call.nr)
        if call.nr not in self.warned:
            self.warned.add(call.nr)
            self.klog(f"unimplemented syscall {name} ({call.nr}): ENOSYS")
        return -errno.ENOSYS

    def klog(self, msg: str, level: int = KERN_ALERT) -> None:
        self.kmsg.printk(msg, level)

    def _handle(self, call: Call):
        """Run the handler; returns its result or -errno."""
        entry = registry.lookup(call.nr)
        if entry is None or entry.handler is None:
            return self.unknown(call)
        self.current = call.task
        try:
            return entry.handler(call)
        except OSError as e:
            return -(e.errno or errno.EINVAL)
        except Exception:
            self.oops(call)
            return -errno.EFAULT

    def oops(self, call: Call) -> None:
        """A bug in a handler: log it, kill that guest process, carry on."""
        self.oopses += 1
        task = call.task
        self.klog(f"oops: {name_of(call.nr)}({', '.join(hex(a) for a in call.args)}) "
                  f"in task {task.tid} ({task.group.comm}); killing it\n"
                  + _traceback_text())
        try:
            os.kill(task.group.host_tgid, signal.SIGKILL)
        except OSError:
            pass

    def on_notif(self, ev) -> None:
        if self.waiting:        # a FIFO open's guest may have been interrupted meanwhile
            self.cancel_orphaned_waits()
        task = self.pids.tasks.get(ev.tid)
        if task is None:        # cannot happen: new tasks are held until known
            self.tracer.reply(ev.notif_id, err=errno.ESRCH)
            return
        call = Call(self, task, ev.nr, ev.args, self.memory(task), ev.notif_id)
        st = self.systrace
        if st is not None:
            st.enter(call)
        result = ret = self._handle(call)
        if isinstance(result, Fd):
            try:
                r = ret = self.tracer.reply_fd(ev.notif_id, result.host_fd, result.cloexec)
                if r < 0 and r != -errno.ENOENT:
                    if result.undo is not None:
                        result.undo()
                    self.tracer.reply(ev.notif_id, err=-r)
            finally:
                os.close(result.host_fd)
        elif isinstance(result, Deferred):
            if st is not None:
                st.deferred(call, result)
                st = None
            if result.cancel is not None:
                self.waiting[ev.notif_id] = result
            # a daemon thread: one stuck on a FIFO nobody opens must not hold up exit
            threading.Thread(target=self._finish_deferred, args=(ev.notif_id, result),
                             name="umlpy-wait", daemon=True).start()
        elif result is PASS:
            ret = None
            self.tracer.reply_continue(ev.notif_id)
        elif result < 0 and result >= -4095:
            self.tracer.reply(ev.notif_id, err=-result)
        else:
            self.tracer.reply(ev.notif_id, result)
        if st is not None:
            st.done(call, ret)

    def cancel_orphaned_waits(self) -> None:
        """Wake the workers of slow calls whose guest is gone (a task died):
        each would otherwise hold a thread and a descriptor for ever."""
        for notif_id, work in list(self.waiting.items()):
            if not self.tracer.notif_valid(notif_id):
                self.waiting.pop(notif_id, None)
                work.cancel()

    def _finish_deferred(self, notif_id: int, work: Deferred) -> None:
        """On a worker thread: finish a slow call and answer the guest."""
        try:
            fd = work.work()
        except OSError as e:
            self.tracer.reply(notif_id, err=e.errno or errno.EIO)
            return
        except Exception:
            self.klog("oops in a deferred call\n" + _traceback_text())
            self.tracer.reply(notif_id, err=errno.EIO)
            return
        finally:
            self.waiting.pop(notif_id, None)
            self.tracer.fstat_forget()      # it ran off the event loop: stat answers may be stale
        if work.value:          # a blocking connect or send: fd is the result itself
            self.tracer.reply(notif_id, fd)
            return
        try:
            r = self.tracer.reply_fd(notif_id, fd, work.cloexec)
            if r < 0 and r != -errno.ENOENT:
                self.tracer.reply(notif_id, err=-r)
        finally:
            os.close(fd)

    def open_device(self, rdev: int, flags: int, block: bool = False) -> int:
        """A host descriptor for the device `rdev` (the device table)."""
        from umlpy.drivers import chardev
        if block:
            return chardev.open_block(self, rdev, flags)
        return chardev.open_device(self, rdev, flags)

    def on_seccomp(self, ev) -> None:
        task = self.pids.tasks.get(ev.tid)
        if task is None:
            self.tracer.skip(ev.tid, -errno.ESRCH)
            return
        if task.reaping is not None:    # the wait4 births.py injected
            births.at_entry(self, task)
            return
        call = Call(self, task, ev.nr, ev.args, self.memory(task), traced=True)
        call.sp = ev.sp
        st = self.systrace
        if st is not None:
            st.enter(call)
            result = st.handle(self, call)
        else:
            result = self._handle(call)
        tid = ev.tid
        if result is not PASS:
            self.tracer.skip(tid, int(result))
            if st is not None:
                st.done(call, int(result))
            return
        if call.orig_args is not None or call.nr != ev.nr:
            self.tracer.set_syscall(tid, call.nr, call.args)
        if call.exit_handler is not None or call.orig_args is not None or st is not None:
            task.pending_call = call
            self.tracer.cont_to_exit(tid)
        else:
            self.tracer.cont(tid)

    def on_sysexit(self, ev) -> None:
        task = self.pids.tasks.get(ev.tid)
        call = task.pending_call if task is not None else None
        if call is None:
            if task is not None and task.reaping is not None:
                births.at_reap_exit(self, task, s64(ev.ret))
            elif ev.fix and task is not None:
                self._exit_of_c_entry(task, ev)
            self._after_exit(task, ev.tid)
            return
        task.pending_call = None
        ret = s64(ev.ret)
        new = self._run_exit_handler(call, call.exit_handler, ret)
        if call.orig_args is not None:
            self.tracer.set_syscall(ev.tid, None, call.orig_args, new)
        elif new is not None:
            self.tracer.set_return(ev.tid, new)
        if self.systrace is not None:
            self.systrace.done(call, ret if new is None else new)
        self._after_exit(task, ev.tid)

    def _after_exit(self, task: Optional[Task], tid: int) -> None:
        # gdb's all-stop may have interrupted this call: it is held at its exit
        if task is not None and self.debugger is not None and self.debugger.on_trapstop(task):
            return
        self.tracer.cont(tid)

    def _exit_of_c_entry(self, task: Task, ev) -> None:
        """The exit of a call whose entry the accelerator let run
        (csrc/faststops.c): a fork whose child is gone from its table, or a
        wait4 (a host pid to show, maybe a child reaped)."""
        ret = s64(ev.ret)
        if ev.fix == host.FIX_FORK:
            if ret > 0 and not births.at_exit(self, task, ret):
                self.tracer.set_return(ev.tid, self.pids.to_guest(ret))
            return
        handler = registry.exit_only(ev.nr)
        if handler is None:
            return
        call = Call(self, task, ev.nr, ev.args, self.memory(task), traced=True)
        new = self._run_exit_handler(call, handler, ret)
        if new is not None:
            self.tracer.set_return(ev.tid, new)

    def _run_exit_handler(self, call: Call, handler, ret: int) -> Optional[int]:
        """handler(call, ret): the call's new result, or None to keep the host's
        (also for a call about to restart, and after an oops)."""
        if handler is None or -ret in ERESTART_CODES:
            return None
        try:
            return handler(call, ret)
        except OSError as e:
            return -(e.errno or errno.EINVAL)
        except Exception:
            self.oops(call)
            return None

    # ---- shutdown ----
    def shutdown(self, kind: str) -> None:
        """reboot(2) from the guest: every guest process dies, the machine stops."""
        if self.shutdown_kind is None:
            self.shutdown_kind = kind
            self.kmsg.printk({"halt": "reboot: System halted", "poweroff": "reboot: Power down",
                              "restart": "reboot: Restarting system"}[kind])
        self.kill_all()

    def kill_all(self) -> None:
        """SIGKILL every guest process (the first process died, or umlpy is stopping)."""
        self.shutting_down = True
        self.signal_all(signal.SIGKILL)
        orphans.settle(self, everyone=True)

    def signal_all(self, sig: int, spare: tuple = ()) -> int:
        """Send sig to every live guest process but those in `spare`; how many got it."""
        hit = 0
        for g in list(self.pids.live_groups()):
            if g in spare:
                continue
            try:
                os.kill(g.host_tgid, sig)
                hit += 1
            except OSError:
                pass
        return hit
