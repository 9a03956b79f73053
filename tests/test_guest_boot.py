"""Booting like UML (`umlpy root=... init=...`): the boot sequence, pid 1's rules,
reboot(2), the kernel log, and one-line errors for bad options. Roots here are
host directories (rootfstype=hostfs); images are tested with the block layer."""
from __future__ import annotations

import pytest

from guestroot import describe, run_umlpy, umlpy_boot


def boot(root, script: str, *extra: str, timeout: float = 60):
    opts = ["root=/dev/root", "rootfstype=hostfs", f"rootflags={root}", "init=/bin/sh", *extra]
    return run_umlpy(umlpy_boot(opts), input=script, timeout=timeout, cwd=str(root))


def test_init_runs_as_pid_1_and_poweroff_ends_the_machine(fresh_busybox_root):
    res = boot(fresh_busybox_root, "echo pid=$$; cat /proc/cmdline; poweroff -f; echo after\n",
               "rw", "quiet", "TERM=vt100")
    assert res.returncode == 0, describe(res)
    lines = res.stdout.splitlines()
    assert lines[0] == "pid=1", describe(res)
    assert lines[1] == (f"root=/dev/root rootfstype=hostfs rootflags={fresh_busybox_root} "
                        "init=/bin/sh rw quiet TERM=vt100"), describe(res)
    assert "after" not in res.stdout


def test_the_boot_log_is_on_the_console_and_in_dmesg(fresh_busybox_root):
    res = boot(fresh_busybox_root, "dmesg; halt -f\n")
    assert res.returncode == 0, describe(res)
    console = [ln for ln in res.stdout.splitlines() if ln.startswith("[")]
    assert any("Run /bin/sh as init process" in ln for ln in console), describe(res)
    assert res.stdout.count("Kernel command line:") == 2, describe(res)     # console + dmesg
    assert "reboot: System halted" in res.stdout


def test_init_ignores_signals_it_has_no_handler_for(fresh_busybox_root):
    res = boot(fresh_busybox_root, "kill -TERM 1; kill -KILL 1; echo still here; poweroff -f\n",
               "quiet")
    assert res.returncode == 0 and "still here" in res.stdout, describe(res)


def test_init_exiting_is_a_panic_with_its_status(fresh_busybox_root):
    res = boot(fresh_busybox_root, "exit 3\n", "quiet")
    assert res.returncode == 3, describe(res)
    assert "Kernel panic - not syncing: Attempted to kill init!" in res.stdout


def test_reboot_boots_again_unless_noreboot(fresh_busybox_root):
    marker = fresh_busybox_root / "tmp" / "booted"
    script = ("if [ -e /tmp/booted ]; then echo second boot; poweroff -f; fi\n"
              "touch /tmp/booted; reboot -f\n")
    res = boot(fresh_busybox_root, script, "rw", "quiet")
    assert res.returncode == 0, describe(res)
    # the second boot reads an exhausted stdin: init exits, which is a panic
    assert marker.exists()
    marker.unlink()
    res = boot(fresh_busybox_root, script, "rw", "quiet", "noreboot")
    assert res.returncode == 0 and "second boot" not in res.stdout, describe(res)


def test_a_read_only_root_refuses_writes(fresh_busybox_root):
    res = boot(fresh_busybox_root, "touch /newfile; echo status=$?; poweroff -f\n", "quiet")
    assert "status=1" in res.stdout and "Read-only file system" in res.stderr, describe(res)
    assert not (fresh_busybox_root / "newfile").exists()


@pytest.mark.parametrize("options, message", [
    (["mem=12Q"], "umlpy: mem=12Q: expected a size like 256M"),
    (["quite"], "umlpy: quite:"),
    (["ubd0=/nonexistent/img"], "umlpy: ubd0: "),
    (["root=/dev/root", "rootfstype=hostfs", "rootflags=/nonexistent"], "umlpy: rootflags="),
])
def test_bad_options_give_one_line(tmp_path, options, message):
    res = run_umlpy(umlpy_boot(options), timeout=30, cwd=str(tmp_path))
    assert res.returncode == 2, describe(res)
    assert res.stderr.startswith(message) and res.stderr.count("\n") == 1, describe(res)
    assert "Traceback" not in res.stderr


HOG = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long mb = atol(argv[1]);
    for (long i = 0; i < mb; i++) {
        char *p = malloc(1 << 20);
        memset(p, 1, 1 << 20);
        usleep(2000);
    }
    printf("allocated %ld MiB\n", mb);
    return 0;
}
"""


def test_mem_is_reported_and_enforced(fresh_busybox_root):
    import shutil
    if shutil.which("gcc") is None:
        pytest.skip("gcc missing (sh tools/install-test-deps.sh)")
    from guestroot import compile_static
    compile_static(HOG, fresh_busybox_root / "bin" / "hog")
    script = ("grep MemTotal /proc/meminfo; hog 200; echo status=$?; hog 4; "
              "echo still running; poweroff -f\n")
    res = boot(fresh_busybox_root, script, "mem=48M")
    assert res.returncode == 0, describe(res)
    assert "MemTotal:          49152 kB" in res.stdout, describe(res)
    assert "Out of memory: Killed process" in res.stdout and "(hog)" in res.stdout
    assert "status=137" in res.stdout and "allocated 200" not in res.stdout
    assert "allocated 4 MiB\nstill running" in res.stdout, describe(res)


def test_a_configuration_file_boots_the_same_machine(fresh_busybox_root, tmp_path):
    conf = tmp_path / "vm.conf"
    conf.write_text(f"""# coLinux style: one option a line
root=/dev/root
rootfstype=hostfs
rootflags="{fresh_busybox_root}"
kernel=vmlinux   # ignored, with a note
mem=96
init=/bin/sh
""")
    script = "cat /proc/cmdline; grep MemTotal /proc/meminfo; poweroff -f\n"
    from_file = run_umlpy(umlpy_boot(["-c", str(conf), "quiet"]), input=script, timeout=60,
                          cwd=str(tmp_path))
    from_line = boot(fresh_busybox_root, script, "mem=96M", "quiet")
    assert from_file.returncode == 0 and from_line.returncode == 0, describe(from_file)
    assert "MemTotal:          98304 kB" in from_file.stdout, describe(from_file)
    assert from_file.stdout.splitlines()[1:] == from_line.stdout.splitlines()[1:]
