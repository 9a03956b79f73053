"""The two ways to start umlpy.

`umlpy run [--root DIR] [--upper DIR] [--cpu N|all] [--] COMMAND [ARGS...]`:
one sandboxed command. With no --root, the guest's / is the host's /
read-only under a tmpfs that vanishes at exit (--upper DIR keeps the changes
in DIR); with --root DIR alone, DIR is the guest's / read-write.

`umlpy [-c FILE] ubd0=root_fs mem=256M init=/bin/sh ...`: boot a machine the
way UML boots (umlpy/boot/)."""
from __future__ import annotations

import argparse
import gc
import os
import signal
import stat as st
import sys
from typing import List, Optional

import umlpy

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
QUIET_SIGNALS = (signal.SIGINT, signal.SIGPIPE)   # a shell prints nothing for these


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:      # one line, no usage dump
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="umlpy", description="A user-mode Linux kernel written in Python.")
    p.add_argument("--version", action="version", version=f"umlpy {umlpy.__version__}")
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("run", help="run a command in a sandboxed guest")
    r.add_argument("--root", default=None,
                   help="host directory used as the guest's / read-write (default: the "
                        "host's / read-only under a tmpfs)")
    r.add_argument("--upper", default=None,
                   help="keep the guest's changes in this host directory (an overlay "
                        "upper layer over --root or the host's /)")
    r.add_argument("--cpu", default=None,
                   help="pin the kernel and its guests to CPU N (default: one CPU), or 'all'")
    r.add_argument("--hostname", default="umlpy", help="the guest's host name")
    r.add_argument("--net", default="host", choices=("host", "none"),
                   help="host: the host's network (default); none: a loopback of its own")
    r.add_argument("--forward", action="append", default=[], metavar="[tcp|udp:]HOST:GUEST",
                   help="forward a host port to a guest port (needs --net=none; repeatable)")
    r.add_argument("--counters", action="store_true",
                   help="print the accelerator's event counts at exit")
    _debug_options(r)
    r.add_argument("argv", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]")
    return p


def _debug_options(r: argparse.ArgumentParser) -> None:
    """umlpy/debug/: traces, statistics, profiles and the gdb stub."""
    r.add_argument("--trace", default=None, metavar="FILE",
                   help="log the guest's syscalls strace-style (--trace alone: to stderr)")
    r.add_argument("--trace-filter", default=None, metavar="SET",
                   help="strace's -e trace= set: names, %%file, %%process, ..., ! negates")
    r.add_argument("--stats", action="store_true",
                   help="per-syscall counts, times and latencies at exit, like strace -c")
    r.add_argument("--profile", default=None, metavar="FILE",
                   help="cProfile the kernel into FILE (read with python3 -m pstats)")
    r.add_argument("--coverage", action="store_true",
                   help="record coverage.py data of the kernel (python3 -m coverage report)")
    r.add_argument("--gdb", default=None, metavar="PORT",
                   help="a GDB remote stub on 127.0.0.1:PORT; the first process waits for gdb")
    r.add_argument("--gdb-attach", action="store_true",
                   help="with --gdb: the first process runs; gdb stops it when it connects")


VALUE_OPTIONS = {"--root", "--upper", "--cpu", "--hostname", "--trace-filter", "--profile",
                 "--gdb"}


def choose_cpu(spec: Optional[str]) -> Optional[int]:
    """Measured: a ptrace stop costs ~13 us when tracer and guest share a CPU and
    ~100 us across CPUs on this kind of VM, so one shared CPU is the default."""
    if spec is None:
        spec = os.environ.get("UMLPY_CPU")
    allowed = sorted(os.sched_getaffinity(0))
    if spec == "all":
        return None
    if spec is None:
        return allowed[0]
    try:
        cpu = int(spec)
    except ValueError:
        raise UsageError(f"--cpu: expected a CPU number or 'all', got {spec!r}") from None
    if cpu not in allowed:
        raise UsageError(f"--cpu: CPU {cpu} is not available (have {allowed})")
    return cpu


def find_program(vfs, name: str, path_var: str, cwd: str) -> Optional[str]:
    """PATH search inside the guest's tree, as a shell would do it."""
    dirs = [name] if "/" in name else [os.path.join(d or ".", name) for d in path_var.split(":")]
    try:
        start = vfs.lookup(cwd).path
    except OSError:
        start = None
    for cand in dirs:
        try:
            a = vfs.lookup(cand, start).must_exist().inode.getattr()
        except OSError:
            continue
        if st.S_ISREG(a.mode) and a.mode & 0o111:
            return cand
    return None


def report_status(status: int) -> int:
    """The exit code a shell would give, and its message for a fatal signal."""
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in QUIET_SIGNALS:
            msg = signal.strsignal(sig) or f"Signal {sig}"
            if os.WCOREDUMP(status):
                msg += " (core dumped)"
            print(msg, file=sys.stderr, flush=True)
        return 128 + sig
    return 1


def run(args) -> int:
    from umlpy.host import features
    missing = features.problems()
    if missing:
        raise UsageError("; ".join(missing))
    argv: List[str] = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        raise UsageError("run: no command given")
    for opt in ("root", "upper"):
        d = getattr(args, opt)
        if d is not None and not os.path.isdir(d):
            raise UsageError(f"--{opt}: {d!r} is not a directory")
    cpu = choose_cpu(args.cpu)
    from umlpy.net import setup as net_setup
    from umlpy.net.policy import NetError
    try:
        netcfg = net_setup.config_from_run(args.net, args.forward)
    except NetError as e:
        raise UsageError(str(e)) from None
    from umlpy.debug.session import DebugSession
    try:
        debug = DebugSession.from_args(args)
    except ValueError as e:
        raise UsageError(str(e)) from None
    debug.begin()
    from umlpy.kernel.kernel import Kernel
    from umlpy.vfs import standard
    from umlpy.vfs.vfs import Vfs

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    os.umask(0)     # the guest's umask is applied by the kernel
    vfs = Vfs()
    try:
        standard.build_root(vfs, args.root, args.upper)
    except OSError as e:
        vfs.close()
        raise UsageError(f"cannot set up the root file system: {e.strerror}") from None
    kernel = Kernel(vfs, hostname=args.hostname)
    try:
        try:
            debug.attach(kernel)
        except (OSError, ValueError) as e:
            raise UsageError(str(e)) from None
        standard.mount_kernel_filesystems(vfs, kernel)
        try:
            net_setup.attach(kernel, netcfg)
        except NetError as e:
            raise UsageError(str(e)) from None
        cwd = standard.host_cwd_in_guest(vfs, args.root)
        prog = find_program(vfs, argv[0], os.environ.get("PATH", DEFAULT_PATH), cwd)
        if prog is None:
            print(f"umlpy: {argv[0]}: command not found", file=sys.stderr)
            return 127
        env = [f"{k}={v}" for k, v in os.environ.items()]
        gc.freeze()         # what start-up made lives as long as umlpy: never scanned again
        gc.enable()
        kernel.start(prog, argv, env, cwd)
        net_setup.started(kernel)
        debug.running()
        try:
            code = report_status(serve(kernel))
        finally:
            debug.finish(kernel)
        if args.counters:
            counts = dict(kernel.tracer.stats(), oopses=kernel.oopses)
            print("umlpy: " + " ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
        return code
    finally:
        net_setup.detach(kernel)
        kernel.close()
        vfs.close()


def serve(kernel) -> int:
    """Run the guest with the terminal (if any) handed to its process group."""
    tty = _take_terminal(kernel.init.host_tgid)

    def stop(signum, frame):
        kernel.kill_all()
    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                return kernel.run()
            except KeyboardInterrupt:
                kernel.kill_all()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if tty is not None:
            _give_back_terminal(tty)


def _take_terminal(pgid: int) -> Optional[int]:
    try:
        if not os.isatty(0) or os.tcgetpgrp(0) != os.getpgrp():
            return None
        os.tcsetpgrp(0, pgid)
        return os.getpgrp()
    except OSError:
        return None


def _give_back_terminal(pgrp: int) -> None:
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(0, pgrp)
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, old)


def boot_machine(argv: List[str]) -> int:
    """`umlpy ubd0=... init=...`: UML's command line (or -c FILE)."""
    from umlpy.boot import HELP, BootOptionError, load_boot_config
    from umlpy.boot.sequence import BootError, boot
    from umlpy.host import features
    try:
        config, notes = load_boot_config(argv)
    except BootOptionError as e:
        raise UsageError(str(e)) from None
    if config.show_help:
        print(HELP)
        return 0
    if config.show_version:
        print(f"umlpy {umlpy.__version__} ({umlpy.RELEASE})")
        return 0
    missing = features.problems()
    if missing:
        raise UsageError("; ".join(missing))
    try:
        return boot(config, notes, choose_cpu(None))
    except BootError as e:
        raise UsageError(str(e)) from None


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["run"]:
            # no cyclic collection while start-up imports and builds (~3 ms
            # of 130); run() turns it back on, the start-up's objects frozen
            gc.disable()
            from umlpy.debug.session import normalize_argv
            return run(_parser().parse_args(["run", *normalize_argv(argv[1:], VALUE_OPTIONS)]))
        if argv[:1] == ["bench"]:
            from umlpy.bench.__main__ import main as bench_main
            return bench_main(argv[1:])
        return boot_machine(argv)           # --help and --version are boot options too
    except UsageError as e:
        print(f"umlpy: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
