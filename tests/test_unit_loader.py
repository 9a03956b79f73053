"""ELF checks and #! parsing (no guest)."""
import errno
import os
import shutil
import struct

import pytest

from umlpy.kernel import loader
from umlpy.fs.hostfs import HostFs
from umlpy.host.keeper import Keeper
from umlpy.kernel.task import Creds
from umlpy.vfs.vfs import Vfs


def test_shebang_forms():
    assert loader.parse_shebang(b"#!/bin/sh\necho") == (b"/bin/sh", None)
    assert loader.parse_shebang(b"#! /usr/bin/env  python3 -u \n") == (b"/usr/bin/env", b"python3 -u")
    assert loader.parse_shebang(b"#!/bin/sh\r\n") == (b"/bin/sh", None)
    with pytest.raises(OSError) as e:
        loader.parse_shebang(b"#!   \n")
    assert e.value.errno == errno.ENOEXEC


def test_real_binaries_parse():
    with open("/bin/true", "rb") as f:
        info = loader.parse_elf(f.read())
    assert info.interp and info.interp.startswith(b"/lib")
    with open("/bin/busybox", "rb") as f:
        assert loader.parse_elf(f.read()).interp is None    # static


@pytest.mark.parametrize("mangle", ["truncate", "machine", "class", "phoff"])
def test_malformed_elf_is_enoexec(mangle):
    with open("/bin/true", "rb") as f:
        data = bytearray(f.read())
    if mangle == "truncate":
        data = data[:40]
    elif mangle == "machine":
        struct.pack_into("<H", data, 18, 40)           # ARM
    elif mangle == "class":
        data[4] = 1                                     # 32-bit
    elif mangle == "phoff":
        struct.pack_into("<Q", data, 32, len(data) + 100)
    with pytest.raises(OSError) as e:
        loader.parse_elf(bytes(data))
    assert e.value.errno == errno.ENOEXEC


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "root"
    (r / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", r / "bin" / "busybox")
    os.symlink("busybox", r / "bin" / "sh")
    (r / "bin" / "script").write_text("#!/bin/sh -e\necho hi\n")
    (r / "bin" / "script").chmod(0o755)
    (r / "bin" / "noexec").write_text("#!/bin/sh\n")
    (r / "bin" / "junk").write_bytes(b"\x00garbage")
    (r / "bin" / "junk").chmod(0o755)
    v = Vfs()
    v.set_root(HostFs(str(r)), str(r))
    yield v
    v.close()


@pytest.fixture
def keeper():
    k = Keeper()
    yield k
    k.close()


def resolver(v, creds=None):
    creds = creds or Creds()
    return lambda p: (v.lookup(p, creds=creds).must_exist(), creds)


def test_script_argv_is_built_as_linux_does(root, keeper):
    ld = loader.Loader(root, os.path.join(root.scratch, "exec"), lambda: keeper)
    plan = ld.prepare("/bin/script", resolver(root), [b"script", b"a1"])
    assert plan.argv == [b"/bin/sh", b"-e", b"/bin/script", b"a1"]
    assert root.path_string(plan.guest_path) == "/bin/busybox" and plan.name == "sh"
    assert os.fstat(plan.image.fd).st_size == os.path.getsize("/bin/busybox")
    again = ld.prepare("/bin/sh", resolver(root), [b"sh"])
    assert again.image is plan.image                     # cached per inode
    # guests exec it through the keeper, which holds the same memfd
    assert plan.image.path == f"/proc/{keeper.pid}/fd/{plan.image.number}"
    kept, mine = os.stat(plan.image.path), os.fstat(plan.image.fd)
    assert (kept.st_dev, kept.st_ino) == (mine.st_dev, mine.st_ino)
    ld.close()


def test_images_beyond_the_bound_are_dropped_by_the_keeper(root, keeper, tmp_path,
                                                          monkeypatch):
    monkeypatch.setattr(loader, "MAX_IMAGES", 1)
    ld = loader.Loader(root, os.path.join(root.scratch, "exec"), lambda: keeper)
    first = ld.prepare("/bin/sh", resolver(root), [b"sh"]).image
    assert os.path.exists(first.path)
    shutil.copy("/bin/busybox", tmp_path / "root" / "bin" / "other")
    second = ld.prepare("/bin/other", resolver(root), [b"other"]).image
    assert list(ld.images.values()) == [second]
    # the keeper let go of the first; the fd number may be reused, by the second only
    assert not os.path.exists(first.path) or os.stat(first.path).st_ino == second.ino
    with pytest.raises(OSError):
        os.fstat(first.fd)
    ld.close()


def test_exec_errors(root, keeper):
    ld = loader.Loader(root, os.path.join(root.scratch, "exec"), lambda: keeper)
    for path, err in (("/bin/noexec", errno.EACCES), ("/bin/junk", errno.ENOEXEC),
                      ("/bin/missing", errno.ENOENT), ("/bin", errno.EACCES)):
        with pytest.raises(OSError) as e:
            ld.prepare(path, resolver(root), [b"x"])
        assert e.value.errno == err, path
    # a guest user without execute permission: EACCES, as Linux
    root.lookup("/bin/script").must_exist().inode.setattr(mode=0o744)
    user = Creds(ruid=1000, euid=1000, suid=1000, fsuid=1000)
    with pytest.raises(OSError) as e:
        ld.prepare("/bin/script", resolver(root, user), [b"x"])
    assert e.value.errno == errno.EACCES
    ld.close()


def _interp_of(img) -> bytes:
    size = os.fstat(img.fd).st_size
    return loader.parse_elf(os.pread(img.fd, size, 0)).interp


def test_the_host_s_own_ld_so_is_named_as_it_is(tmp_path, keeper):
    """Under a root that is the host's /, ld.so is the host's very file: PT_INTERP
    stays (ld.so, gdb and /proc/PID/maps show its real name). A root with a
    copy of ld.so gets PT_INTERP pointed at the keeper's image of that copy."""
    host = Vfs()
    host.set_root(HostFs("/"), "/")
    ld = loader.Loader(host, os.path.join(host.scratch, "exec"), lambda: keeper)
    with open("/bin/true", "rb") as f:
        wanted = loader.parse_elf(f.read()).interp
    img = ld.prepare("/bin/true", resolver(host), [b"true"]).image
    assert _interp_of(img) == wanted
    ld.close()
    host.close()

    r = tmp_path / "copy"
    interp = os.fsdecode(wanted)
    for src in ("/bin/true", os.path.realpath(interp)):
        dst = r / src.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    link = r / interp.lstrip("/")
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        os.symlink(os.path.realpath(interp), link)
    v = Vfs()
    v.set_root(HostFs(str(r)), str(r))
    ld = loader.Loader(v, os.path.join(v.scratch, "exec"), lambda: keeper)
    img = ld.prepare("/bin/true", resolver(v), [b"true"]).image
    assert _interp_of(img).startswith(f"/proc/{keeper.pid}/fd/".encode())
    ld.close()
    v.close()
