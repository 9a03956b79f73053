"""The guest root is a sandbox: no path, symlink or descriptor leads out of it.

A canary file lives next to (outside) the guest root.  Every attempt to reach
it must fail with a non-zero status and without printing its content.
"""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

from guestroot import describe, run_guest

SECRET = "CANARY-7f3a9c-outside-the-root"
DEPTH = "../" * 24


@pytest.fixture
def canary(tmp_path):
    d = tmp_path / "outside"
    d.mkdir()
    f = d / "secret"
    f.write_text(SECRET + "\n")
    return f


def _relative_from(start: str, target: str) -> str:
    return os.path.relpath(target, start)


def _attempts(root, canary) -> dict[str, str]:
    """Guest paths that, resolved by the host from the root, reach the canary."""
    host = str(canary)
    rel = _relative_from(str(root), host)            # e.g. ../outside/secret
    return {
        "dotdot-abs": "/" + DEPTH + host.lstrip("/"),
        "dotdot-rel": DEPTH + host.lstrip("/"),
        "dotdot-sibling": "/" + rel,
        "dev-dotdot": "/dev/" + DEPTH + host.lstrip("/"),
        "tmp-dotdot": "/tmp/../" + rel,
        "abs-symlink": "/abs-link",
        "rel-symlink": "/rel-link",
        "deep-rel-symlink": "/tmp/deep/rel-link",
        "dir-symlink": "/dir-link/secret",
        "up-symlink": "/up-link/" + _relative_from(str(root.parent), host),
        "chain-symlink": "/chain-link",
    }


def _plant(root, canary) -> None:
    host = str(canary)
    (root / "tmp" / "deep").mkdir(parents=True)
    os.symlink(host, root / "abs-link")
    os.symlink(DEPTH + host.lstrip("/"), root / "rel-link")
    os.symlink(_relative_from(str(root / "tmp" / "deep"), host), root / "tmp" / "deep" / "rel-link")
    os.symlink(str(canary.parent), root / "dir-link")
    os.symlink("..", root / "up-link")
    os.symlink("rel-link", root / "chain-link")


def test_canary_is_reachable_natively(fresh_busybox_root, canary):
    """The planted paths do reach the canary when the host resolves them from the root,
    so their failing in the guest means something."""
    _plant(fresh_busybox_root, canary)
    for name, path in _attempts(fresh_busybox_root, canary).items():
        if name == "dev-dotdot":
            continue  # there is no /dev in the root on the host
        full = os.path.join(str(fresh_busybox_root), path.lstrip("/"))
        with open(full) as f:
            assert f.read().strip() == SECRET, (name, full)


def test_paths_and_symlinks_do_not_escape(fresh_busybox_root, canary):
    _plant(fresh_busybox_root, canary)
    attempts = _attempts(fresh_busybox_root, canary)
    script = "cd /\n" + "".join(
        f'if cat "{path}" 2>/dev/null; then echo "ESCAPED:{name}"; else echo "blocked:{name}"; fi\n'
        for name, path in attempts.items())
    res = run_guest(fresh_busybox_root, ["/bin/sh", "-c", script])
    assert SECRET not in res.stdout and SECRET not in res.stderr, describe(res)
    assert res.returncode == 0, describe(res)
    assert res.stdout.split() == [f"blocked:{n}" for n in attempts], describe(res)


def test_single_cat_escape_fails_with_status(fresh_busybox_root, canary):
    path = "/" + DEPTH + str(canary).lstrip("/")
    res = run_guest(fresh_busybox_root, ["/bin/cat", path])
    assert res.returncode != 0, describe(res)
    assert SECRET not in res.stdout and SECRET not in res.stderr, describe(res)
    _plant(fresh_busybox_root, canary)
    for link in ("/abs-link", "/rel-link", "/chain-link"):
        res = run_guest(fresh_busybox_root, ["/bin/cat", link])
        assert res.returncode != 0, describe(res)
        assert SECRET not in res.stdout, describe(res)


def test_guest_made_symlinks_do_not_escape(fresh_busybox_root, canary):
    host = str(canary)
    rel = _relative_from(str(fresh_busybox_root / "tmp"), host)
    script = textwrap.dedent(f"""
        cd /tmp
        ln -s {host} g-abs && ln -s {DEPTH}{host.lstrip('/')} g-rel && ln -s {rel} g-sib
        for l in g-abs g-rel g-sib; do
            if cat $l 2>/dev/null; then echo "ESCAPED:$l"; else echo "blocked:$l"; fi
        done
        readlink g-abs
    """)
    res = run_guest(fresh_busybox_root, ["/bin/sh", "-c", script])
    assert SECRET not in res.stdout, describe(res)
    assert res.returncode == 0, describe(res)
    lines = res.stdout.split()
    assert lines[:3] == ["blocked:g-abs", "blocked:g-rel", "blocked:g-sib"], describe(res)
    assert lines[3] == host, describe(res)  # the link itself is stored as written


def test_dotdot_of_root_is_root(fresh_busybox_root):
    script = textwrap.dedent(f"""
        cd /../../..; pwd
        cd /tmp/{DEPTH}; pwd
        cd /; cd ..; pwd
        ls -a /.. | tr '\\n' ' '; echo
        ls -a / | tr '\\n' ' '; echo
    """)
    res = run_guest(fresh_busybox_root, ["/bin/sh", "-c", script])
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[:3] == ["/", "/", "/"], describe(res)
    assert lines[3] == lines[4], describe(res)
    assert "secret" not in lines[3] and "outside" not in lines[3], describe(res)


FD_SCRIPT = """
import os, subprocess, sys
ok = []
for fd in range(3, 1024):
    try:
        os.fstat(fd)
    except OSError:
        continue
    ok.append(fd)
print(sys.argv[1], "open-fds", ok, flush=True)
if sys.argv[1] == "parent":
    # A child after fork and exec, inheriting every descriptor the parent has.
    subprocess.run([sys.executable, "-c", sys.argv[2], "child", ""], close_fds=False)
"""


def test_kernel_descriptors_are_invisible(dynamic_root):
    argv = ["-c", FD_SCRIPT, "parent", FD_SCRIPT]
    native = subprocess.run(["/usr/bin/python3.11", *argv], capture_output=True,
                            text=True, timeout=60)
    expected = "parent open-fds []\nchild open-fds []\n"
    assert native.stdout == expected, native  # the probe is sound
    res = run_guest(dynamic_root, ["/usr/bin/python3", *argv], timeout=180)
    assert res.returncode == 0, describe(res)
    assert res.stdout == expected, describe(res)
