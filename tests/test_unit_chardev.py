"""The device table and devpts, with no guest (real host devices)."""
import errno
import fcntl
import os
import stat as st

import pytest

from umlpy.drivers import chardev
from umlpy.fs.devpts import DevPtsFs, PtyTable
from umlpy.kernel.task import Creds
from unit_kernel_state import boot

dev = os.makedev


@pytest.fixture
def kern(tmp_path):
    k, _walker, _task = boot(str(tmp_path / "s"))
    return k


def errno_of(fn, *a, **kw):
    with pytest.raises(OSError) as e:
        fn(*a, **kw)
    return e.value.errno


def test_memory_devices_are_the_hosts(kern):
    fd = chardev.open_device(kern, dev(1, 5), os.O_RDONLY)
    try:
        assert os.read(fd, 4) == b"\0" * 4
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert os.fstat(fd).st_rdev == dev(1, 5)
    finally:
        os.close(fd)
    fd = chardev.open_device(kern, dev(1, 7), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        assert errno_of(os.write, fd, b"x") == errno.ENOSPC       # /dev/full
    finally:
        os.close(fd)
    for minor in (3, 8, 9):
        os.close(chardev.open_device(kern, dev(1, minor), os.O_RDWR))


def test_unknown_devices_are_enxio(kern):
    for rdev in (dev(1, 1), dev(1, 2), dev(4, 1), dev(8, 0), dev(10, 200), dev(5, 9)):
        assert errno_of(chardev.open_device, kern, rdev, os.O_RDONLY) == errno.ENXIO
    assert errno_of(chardev.open_block, kern, dev(8, 0), os.O_RDONLY) == errno.ENXIO


def test_registration_hook(kern):
    calls = []

    def opener(kernel, minor, flags):
        calls.append((minor, flags & os.O_ACCMODE, bool(flags & os.O_CLOEXEC)))
        return os.open("/dev/null", flags)
    chardev.register_block(98, range(0, 16), opener)
    try:
        os.close(chardev.open_block(kern, dev(98, 3), os.O_RDWR | os.O_EXCL))
        assert calls == [(3, os.O_RDWR, True)]
        assert errno_of(chardev.open_block, kern, dev(98, 16), os.O_RDONLY) == errno.ENXIO
    finally:
        chardev.unregister_block(98, opener)
    assert errno_of(chardev.open_block, kern, dev(98, 3), os.O_RDONLY) == errno.ENXIO


def test_ptmx_allows_its_pts_and_nothing_else(kern):
    kern.current.creds = Creds(1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000)
    other = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)     # a host pty the guest did not make
    master = chardev.open_device(kern, dev(5, 2), os.O_RDWR)
    try:
        allowed = kern.ptys.numbers()
        assert len(allowed) == 1
        n = allowed[0]
        fcntl.ioctl(master, 0x40045431, b"\0\0\0\0")           # TIOCSPTLCK: unlock
        slave = chardev.open_device(kern, chardev.pts_rdev(n), os.O_RDWR)
        try:
            assert os.isatty(slave) and os.fstat(slave).st_rdev == chardev.pts_rdev(n)
            os.write(master, b"hi\n")
            assert os.read(slave, 10) == b"hi\n"
        finally:
            os.close(slave)
        others = [m for m in range(64) if m != n and os.path.exists(f"/dev/pts/{m}")]
        for m in others:
            assert errno_of(chardev.open_device, kern, chardev.pts_rdev(m), os.O_RDWR) \
                == errno.ENXIO
        # devpts shows it, owned by the guest user who opened ptmx
        fs = DevPtsFs(kern)
        names = [name for name, _i, _d in fs.root.readdir()]
        assert names == ["ptmx", str(n)]
        a = fs.root.lookup(str(n)).getattr()
        assert (a.uid, a.gid, st.S_IMODE(a.mode), a.rdev) == (1000, 5, 0o620,
                                                              chardev.pts_rdev(n))
        assert a.ino == n + 3
        fs.root.lookup(str(n)).setattr(uid=0, mode=0o600)
        a = fs.root.lookup(str(n)).getattr()
        assert (a.uid, st.S_IMODE(a.mode)) == (0, 0o600)
        p = fs.root.lookup("ptmx").getattr()
        assert p.rdev == dev(5, 2) and st.S_IMODE(p.mode) == 0 and st.S_ISCHR(p.mode)
        assert "ptmxmode=000" in fs.mount_options()
        assert errno_of(fs.root.lookup, "0" + str(n)) == errno.ENOENT
    finally:
        os.close(master)
        os.close(other)
    # the master closed: the host freed the number, the guest loses it
    assert kern.ptys.numbers() == []
    assert errno_of(chardev.open_device, kern, chardev.pts_rdev(n), os.O_RDWR) == errno.ENXIO


def test_tty_without_a_controlling_terminal(kern):
    if chardev.procinfo.host_ctty(os.getpid()) != 0:
        pytest.skip("the test process has a controlling terminal")
    assert errno_of(chardev.open_device, kern, dev(5, 0), os.O_RDWR) == errno.ENXIO
    kern.current = None
    assert errno_of(chardev.open_device, kern, dev(5, 0), os.O_RDWR) == errno.ENXIO


def test_console_is_umlpys_own_output(kern):
    fd = chardev.open_device(kern, dev(5, 1), os.O_WRONLY)
    try:
        assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
        assert os.fstat(fd).st_ino == os.fstat(1).st_ino
    finally:
        os.close(fd)


def test_pty_table_adopts_umlpys_terminal():
    t = PtyTable()
    name = chardev.own_terminal()
    if name is None or chardev.pts_number(os.stat(name).st_rdev) is None:
        assert t.numbers() == []
    else:
        assert t.numbers() == [chardev.pts_number(os.stat(name).st_rdev)]
