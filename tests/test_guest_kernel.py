"""Kernel services seen from a guest: credentials, uname, ENOSYS logging, fds."""
import textwrap

from guestroot import run_guest


def py(dynamic_root, code, **kw):
    return run_guest(dynamic_root, ["/usr/bin/python3", "-c", textwrap.dedent(code)], **kw)


def test_credentials_are_the_guests_own(dynamic_root):
    r = py(dynamic_root, """
        import os
        print(os.getuid(), os.geteuid(), os.getgid(), os.getresuid())
        os.setgroups([5, 6]); print(os.getgroups())
        os.setresgid(100, 100, 100); os.setresuid(1000, 1000, 0)
        print(os.getuid(), os.geteuid(), os.getresuid(), os.getgid())
        try:
            os.setgroups([1])
        except PermissionError:
            print("setgroups EPERM")
        os.seteuid(0); print("back to", os.geteuid())
        os.setresuid(1000, 1000, 1000)
        try:
            os.setuid(0)
        except PermissionError:
            print("setuid EPERM")
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "0 0 0 (0, 0, 0)", "[5, 6]", "1000 1000 (1000, 1000, 0) 100",
        "setgroups EPERM", "back to 0", "setuid EPERM"]


def test_uname_and_hostname_are_per_instance(dynamic_root):
    r = py(dynamic_root, """
        import os, socket
        u = os.uname(); print(u.sysname, u.nodename, u.machine, "umlpy" in u.release)
        socket.sethostname("inner"); print(socket.gethostname())
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["Linux", "umlpy", "x86_64", "True", "inner"]
    import socket
    assert socket.gethostname() != "inner"


def test_unknown_syscalls_get_enosys_and_one_warning(dynamic_root):
    r = py(dynamic_root, """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        for nr in (163, 163, 167):          # acct(2) twice, swapon(2)
            print(libc.syscall(nr, 0, 0, 0, 0, 0), ctypes.get_errno())
        print(libc.syscall(435, 0, 0), ctypes.get_errno())   # clone3: quiet ENOSYS
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["-1", "38"] * 4
    assert r.stderr.count("unimplemented syscall acct") == 1
    assert r.stderr.count("unimplemented syscall swapon") == 1
    assert "clone3" not in r.stderr


def test_open_stat_and_cwd_through_the_kernel(dynamic_root):
    r = py(dynamic_root, """
        import os
        os.makedirs("/tmp/kt/d", exist_ok=True); os.chdir("/tmp/kt")
        with open("d/f", "w") as f: f.write("x" * 10)
        fd = os.open("/tmp/kt", os.O_RDONLY | os.O_DIRECTORY)
        print(os.stat("f", dir_fd=os.open("d", os.O_RDONLY)).st_size, os.getcwd())
        os.symlink("d/f", "l"); print(os.readlink("l"), os.path.getsize("l"))
        os.rename("l", "m"); os.link("d/f", "h"); print(os.stat("h").st_nlink)
        os.chdir("d"); os.fchdir(fd); print(os.getcwd())
        os.unlink("m"); os.unlink("h"); os.unlink("d/f"); os.rmdir("d"); print(os.listdir("."))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["10 /tmp/kt", "d/f 10", "2", "/tmp/kt", "[]"]


def test_groups_sessions_and_signal_senders_are_guest_pids(dynamic_root):
    r = py(dynamic_root, """
        import ctypes, os, signal
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            sid = ctypes.CDLL(None).setsid()
            os.write(w, f"{sid} {os.getpid()} {os.getpgid(0)} {os.getsid(0)} {os.getppid()}".encode())
            os.kill(os.getppid(), signal.SIGUSR1)
            os._exit(7)
        info = signal.sigwaitinfo({signal.SIGUSR1})
        print(os.read(r, 100).decode())
        print(pid, info.si_pid, info.si_signo == signal.SIGUSR1)
        wpid, status = os.waitpid(pid, 0)
        print(wpid == pid, os.waitstatus_to_exitcode(status))
        os.setpgid(0, 0); print(os.getpgrp(), os.getpgid(0))
    """)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    sid, cpid, pgid, sid2, ppid = map(int, lines[0].split())
    assert sid == cpid == pgid == sid2 and ppid == 1
    child, sender, ok = lines[1].split()
    assert child == sender == str(cpid) and ok == "True"
    assert lines[2] == "True 7"
    assert lines[3] == "1 1"
