"""Execs answered in C (csrc/fastexec.c): what the kernel publishes, and what
it adopts afterwards.

When the kernel has prepared an execve of an ELF by a path, it publishes the
answer (the image's host path) with the files it was made from; C answers
the same execve of the same path by a task of the same resolution context
while nothing changed, and checks its exec event. Each answer is logged: the
kernel then does what it would have done itself, in the same order, before
it handles its next event (the pending exec, then the new exe and comm).
"""
from __future__ import annotations

import os
import signal
from typing import Dict, List, Optional

from umlpy.record import Record


class Published(Record):
    __slots__ = _fields = ("serial", "plan", "sources")

    def __init__(self, serial: int, plan, sources: List) -> None:
        self.serial = serial
        self.plan = plan            # the loader's ExecPlan it answers with
        self.sources = sources      # loader.ExecSource list whose fds C fstats


class ExecCache:
    def __init__(self, tracer) -> None:
        self.tracer = tracer
        self.slots: Dict[int, Published] = {}

    @staticmethod
    def release(sources: List) -> None:
        for src in sources:
            os.close(src.fd)

    def publish(self, task, name: bytes, plan, host_path: bytes, sources: List) -> None:
        """task's execve of `name` (by its text, from the cwd) prepared `plan`,
        run by host_path, from `sources` (the program, then its ld.so), whose
        fds this takes."""
        ok = None
        if plan.argv is None and sources:
            host_interp = sources[1].host_path if len(sources) > 1 else ""
            ok = self.tracer.exec_publish(
                task.host_tid, name, host_path, (plan.image.dev, plan.image.ino), [(s.fd, s.stat) for s in sources],
                os.fsencode(host_interp))
        if ok is None:
            self.release(sources)
            return
        slot, serial = ok
        old = self.slots.get(slot)
        self.slots[slot] = Published(serial, plan, sources)
        if old is not None:
            self.release(old.sources)

    def forget(self) -> None:
        """An image is going: nothing answered from now on names one."""
        self.tracer.exec_void()
        self.close()

    def _published(self, k, task, slot: int, serial: int) -> Optional[Published]:
        p = self.slots.get(slot)
        if p is not None and p.serial == serial:
            return p
        # Not possible (a slot is published again only by an exec Python
        # handles, after adopting): never let the task run unchecked.
        k.klog(f"exec answered in C by an unknown answer for task {task.tid}: killed")
        os.kill(task.host_tid, signal.SIGKILL)
        return None

    def adopt(self, k) -> None:
        """Do what the kernel does for the execs C answered, in their order."""
        from umlpy.kernel import lifecycle
        for tid, slot, serial, done in self.tracer.take_execs():
            task = k.pids.tasks.get(tid)
            if task is None:
                continue
            p = self._published(k, task, slot, serial)
            if p is None:
                continue
            if not done:
                task.pending_exec = p.plan
                for src in p.sources:
                    k.vfs.handles.register(src.key, src.path)
            else:
                task.pending_exec = None
                lifecycle.exec_taken(k, task, p.plan)

    def close(self) -> None:
        """Close the descriptors C checked (C answers none of them any more)."""
        for p in self.slots.values():
            self.release(p.sources)
        self.slots.clear()
