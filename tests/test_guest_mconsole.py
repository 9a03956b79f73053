"""UML's management console against a booted umlpy, driven by the real
uml_mconsole of uml-utilities: version, proc, hot-plugging a disk, sysrq, halt."""
from __future__ import annotations

import shutil
import subprocess
import time

import pytest

from guestroot import boot_hostfs_machine, describe

pytestmark = pytest.mark.skipif(shutil.which("uml_mconsole") is None,
                                reason="uml-utilities missing (sh tools/install-test-deps.sh)")


def mconsole(sock, *command: str) -> str:
    res = subprocess.run(["uml_mconsole", str(sock), *command], capture_output=True, text=True,
                         timeout=20)
    return res.stdout


def test_uml_mconsole_drives_a_running_machine(fresh_busybox_root, tmp_path):
    disk = tmp_path / "disk.img"
    subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", str(disk), "8M"], check=True)
    uml_dir = tmp_path / "uml"
    script = ("while [ ! -b /dev/ubdb ]; do sleep 0.1; done; echo ubdb-appeared\n"
              "while true; do sleep 1; done\n")
    proc = boot_hostfs_machine(fresh_busybox_root, "testvm", uml_dir)
    proc.stdin.write(script)
    proc.stdin.close()
    proc.stdin = None
    sock = uml_dir / "testvm" / "mconsole"
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        assert (uml_dir / "testvm" / "pid").read_text().strip() == str(proc.pid)
        assert mconsole(sock, "version").startswith("OK Linux umlpy 6.1.0-umlpy")
        meminfo = mconsole(sock, "proc", "meminfo")
        assert meminfo.startswith("OK \nMemTotal:"), meminfo
        assert mconsole(sock, "config", f"ubdb={disk}") == "OK \n"
        assert mconsole(sock, "config", "ubdb") == f"OK {disk}\n"
        tasks = mconsole(sock, "sysrq", "t")
        assert "Show State" in tasks and "sh " in tasks, tasks
        assert mconsole(sock, "go").startswith("ERR Not stopped")
        time.sleep(1)
        assert mconsole(sock, "halt") == "OK \n"
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, describe(subprocess.CompletedProcess(proc.args, proc.returncode,
                                                                      out, err))
    assert "ubdb-appeared" in out
    assert not (uml_dir / "testvm").exists(), "the umid directory was left behind"
