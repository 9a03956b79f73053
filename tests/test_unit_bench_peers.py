"""The benchmark's peers and tree workloads, without running the peers: the
argv each runner builds, UML's init script, and the file tree tar works on."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from umlpy.bench import runners, workloads
from umlpy.bench.peers import PEERS, uml_init_script
from umlpy.bench.trees import make_tree


def test_every_peer_is_registered_and_pins_with_taskset() -> None:
    for name in PEERS:
        argv = runners.RUNNERS[name].argv(["/bin/true"], 1)
        assert "taskset" in argv and argv[argv.index("taskset") + 2] == "1", (name, argv)
        free = runners.RUNNERS[name].argv(["/bin/true"], None)
        assert "taskset" not in free, (name, free)


def test_gvisor_runner_names_its_platform() -> None:
    argv = runners.RUNNERS["gvisor-systrap"].argv(["/bin/echo", "x"], None)
    assert argv[:1] == ["runsc"] and "--platform=systrap" in argv and "--rootless" in argv
    assert argv[-3:] == ["do", "/bin/echo", "x"]


def test_uml_init_script_runs_the_command_and_reports_its_status(tmp_path: Path) -> None:
    script = uml_init_script(["/bin/sh", "-c", "echo 'a b'; exit 3"])
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n") and os.access(script, os.X_OK)
    # The same command gives the same script (they are cached by content).
    assert uml_init_script(["/bin/sh", "-c", "echo 'a b'; exit 3"]) == script
    # Run the script's command lines natively, without the mounts and poweroff
    # that only make sense as UML's init: the quoting and the status survive.
    body = [ln for ln in text.splitlines()[1:]
            if not ln.startswith(("mount ", "mkdir ", "exec /bin/busybox poweroff"))]
    out = subprocess.run(["/bin/sh", "-c", "\n".join(body)], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.stdout.splitlines() == ["a b", "uml-exit=3"]


def test_uml_wrapper_fails_when_init_did(tmp_path: Path) -> None:
    argv = runners.RUNNERS["uml"].argv(["/bin/false"], None)
    assert argv[:2] == ["/bin/sh", "-c"]
    # Replace the UML boot by a stand-in printing what UML's console would.
    fake = tmp_path / "linux.uml"
    fake.write_text("#!/bin/sh\necho booting; echo uml-exit=1\n")
    fake.chmod(0o755)
    boot = [str(fake) if a == "linux.uml" else a for a in argv]
    assert subprocess.run(boot, capture_output=True).returncode == 1
    fake.write_text("#!/bin/sh\necho uml-exit=0\n")
    assert subprocess.run(boot, capture_output=True).returncode == 0


def test_default_runners_are_native_umlpy_and_installed_peers() -> None:
    names = [r.name for r in runners.select(None)]
    assert names[:2] == ["native", "umlpy"]
    for peer in PEERS:
        assert (peer in names) == (runners.RUNNERS[peer].unavailable() is None)
    assert [r.name for r in runners.select("all")][2:] == list(PEERS)


def test_tree_has_the_files_tar_will_see(tmp_path: Path) -> None:
    make_tree(tmp_path / "t", 250)
    files = sorted(p for p in (tmp_path / "t").rglob("*") if p.is_file())
    assert len(files) == 250
    assert len({p.parent for p in files}) == 3
    assert all(100 <= p.stat().st_size < 8100 for p in files)


def test_issue6_workloads_are_registered() -> None:
    wanted = {"getpid", "pread", "openclose", "stat", "forkexec", "pipe", "bigio", "compute",
              "files", "tarc", "tarx", "python", "startup"}
    assert wanted <= set(workloads.WORKLOADS)
