"""Children held at their first stop whose fork event will never come.

A new child is held at its first stop until its parent's fork event says who
it is (lifecycle.on_trapstop keeps it in Kernel.early_stops). A parent that is
SIGKILLed inside fork, after the child exists but before its event stop,
never reports that event: the child would wait forever, and with it the
machine's shutdown. Such a child has not run one instruction of its own; it
is given a guest pid under its host parent (the first process, which reaps
it) and killed. Linux would let it run, but its credentials and parent are
lost with the event, and guessing them could hand it the wrong ones.

A held child is settled as an orphan only when both hold:
- it has waited ORPHAN_AFTER seconds (a parent reaches its event stop within
  microseconds of creating the child), and
- no live guest thread is stopped or asleep inside a fork-family call (with
  CLONE_PARENT the forking thread is not the child's host parent, so all are
  looked at).
"""
import os
import signal
import time

from umlpy.host import procinfo
from umlpy.syscalls.numbers import NR

ORPHAN_AFTER = 0.5
CHECK_EVERY = 0.1       # at most this often a look at every thread's /proc syscall
FORK_NRS = frozenset(NR[n] for n in ("clone", "fork", "vfork", "clone3"))


def hold(k, tid: int) -> None:
    """A first stop before its parent's event: hold it and note when."""
    if not k.early_stops:
        k.tracer.set_ticks(True)        # settle must run even if every guest sleeps
    k.early_stops.setdefault(tid, time.monotonic())


def release(k, tid: int) -> bool:
    """The parent's event (or the child's death) came: was the child held?"""
    held = k.early_stops.pop(tid, None) is not None
    if held and not k.early_stops:
        k.tracer.set_ticks(False)
    return held


def _someone_forking(k) -> bool:
    for group in k.pids.live_groups():
        for t in group.threads.values():
            try:
                if procinfo.current_syscall(t.host_tid) in FORK_NRS:
                    return True
            except (OSError, ValueError):
                continue
    return False


def settle(k, everyone: bool = False) -> None:
    """Kill held children that no fork event can claim any more (all of them
    when the machine is stopping)."""
    if not k.early_stops:
        return
    now = time.monotonic()
    if not everyone:
        if now < k.orphans_checked + CHECK_EVERY:
            return
        k.orphans_checked = now
    due = [tid for tid, since in k.early_stops.items()
           if everyone or now - since >= ORPHAN_AFTER]
    if not due or (not everyone and _someone_forking(k)):
        return
    for tid in due:
        release(k, tid)
        _adopt(k, tid)
        k.klog(f"host task {tid}: its parent died inside fork; killed before it ran")
        try:
            os.kill(tid, signal.SIGKILL)
        except OSError:
            pass
        k.tracer.cont(tid)


def _adopt(k, tid: int) -> None:
    """Give the child a guest pid under its host parent now (the first process,
    a child subreaper): that parent's wait4 will reap it, and must see a pid."""
    from umlpy.kernel.lifecycle import new_task
    try:
        ppid, tgid = procinfo.parent_and_group(tid)
    except OSError:
        return
    group = k.pids.groups.get(k.pids.to_guest(ppid))
    if tgid != tid or group is None or group.zombie or not group.threads:
        return          # a thread dies with its process; no guest parent to reap it
    task = new_task(k, next(iter(group.threads.values())), tid, signal.SIGCHLD)
    task.started = True
