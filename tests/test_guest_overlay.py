"""The default root of `umlpy run`: the host's / read-only under a tmpfs,
with the kernel's own /proc, /dev and ownership. Compared with the host."""
import os
import subprocess
import sys

UMLPY = [sys.executable, "-m", "umlpy", "run"]


def guest(script: str, *opts: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(UMLPY + list(opts) + ["--", "/bin/sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout)


def test_writes_vanish_and_the_host_is_untouched(tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("host")
    r = guest(f"echo guest > {canary} && cat {canary} && rm {canary} && ls {tmp_path}"
              f" && mkdir /usr/umlpy-overlay-test && chown 4321:8765 /etc/hostname"
              f" && stat -c '%u %g' /etc/hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["guest", "4321", "8765"]
    assert canary.read_text() == "host"
    assert not os.path.exists("/usr/umlpy-overlay-test")
    assert os.stat("/etc/hostname").st_uid == 0


def test_upper_keeps_changes_and_ownership_is_virtual(tmp_path):
    upper = tmp_path / "upper"
    upper.mkdir()
    r = guest("mkdir -p /srv/kept && echo x > /srv/kept/f && chown 1234:5678 /srv/kept/f"
              " && mknod /srv/kept/null c 1 3", "--upper", str(upper))
    assert r.returncode == 0, r.stderr
    host_f = upper / "srv" / "kept" / "f"
    assert host_f.read_text() == "x\n" and host_f.stat().st_uid == os.getuid()
    r = guest("stat -c '%u %g %F' /srv/kept/f /srv/kept/null && echo hi > /srv/kept/null",
              "--upper", str(upper))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1234 5678 regular file", "0 0 character special file"]


def test_tar_round_trip_keeps_modes_owners_and_links():
    script = r"""
        set -e
        D=$(mktemp -d); cd $D; mkdir a; cd a
        echo data > f; ln f hard; ln -s f sym; mkdir d; chmod 0750 d
        chown 1234:5678 f; chmod 0640 f
        tar --numeric-owner -cpf ../a.tar .
        mkdir ../b; cd ../b; tar --numeric-owner -xpf ../a.tar
        find . -printf '%p %m %U %G %n %y %l\n' | sort
        cd / && rm -rf "$D"
    """
    r = guest(script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:-1] == [
        ". 755 0 0 3 d ", "./d 750 0 0 2 d ", "./f 640 1234 5678 2 f ",
        "./hard 640 1234 5678 2 f ", "./sym 777 0 0 1 l f"]
    if os.geteuid() == 0:           # natively the same, where the host lets us chown
        native = subprocess.run(["/bin/sh", "-c", "umask 022;" + script], capture_output=True,
                                text=True, timeout=60)
        assert native.stdout == r.stdout


def test_proc_shows_guest_processes_only():
    r = guest("readlink /proc/self/exe; ps -eo pid,comm | sort -n | head -3; "
              "cat /proc/self/stat | cut -d' ' -f1,4")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == os.path.realpath("/usr/bin/readlink")
    assert lines[1].split() == ["PID", "COMMAND"] and lines[2].split()[0] == "1"
    pid, ppid = lines[-2].split()
    assert ppid == "1" and int(pid) < 20


def test_fifo_between_two_processes_and_sqlite_on_tmpfs():
    r = guest("cd /tmp && F=$(mktemp -u) && mkfifo $F && (echo through > $F &) && cat $F && "
              "python3 -c \"import sqlite3; d=sqlite3.connect('/dev/shm/t.db'); "
              "d.execute('create table t(a)'); d.executemany('insert into t values(?)', "
              "[(i,) for i in range(100)]); d.commit(); "
              "print(d.execute('select sum(a) from t').fetchone()[0])\"")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["through", "4950"]


def test_unprivileged_guest_user_gets_eacces_and_eperm():
    script = r"""
import errno, os
os.makedirs('/tmp/sticky', exist_ok=True); os.chmod('/tmp/sticky', 0o1777)
open('/tmp/sticky/roots', 'w').close()
os.setgroups([]); os.setgid(1000); os.setuid(1000)
def code(f):
    try:
        f(); return 0
    except OSError as e:
        return errno.errorcode[e.errno]
print(code(lambda: open('/etc/hostname', 'a')),
      code(lambda: open('/etc/umlpy-new', 'w')),
      code(lambda: os.chmod('/etc/hostname', 0o777)),
      code(lambda: os.unlink('/tmp/sticky/roots')),
      code(lambda: os.chown('/tmp', 1000, 1000)),
      code(lambda: open('/tmp/sticky/mine', 'w').close()))
"""
    r = subprocess.run(UMLPY + ["--", "python3", "-c", script], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["EACCES", "EACCES", "EPERM", "EPERM", "EPERM", "0"]
