"""procfs's text formats on plain strings."""
from umlpy.fs import procfs_text as T

HOST_STAT = ("4242 (a) b (c)) t 4000 4100 4200 34816 4100 4194560 1 2 3 4 5 6 7 8 20 0 3 0 "
             "123 456 789 18446744073709551615 1 2 3 4 5 0 0 0 0 99 0 0 17 1 0 0 0 0 0 "
             "6 7 8 9 10 11 12 0")


def test_stat_comm_with_parens_and_spaces():
    pid, comm, rest = T.split_stat(HOST_STAT)
    assert (pid, comm, rest[0]) == ("4242", "a) b (c)", "t")
    out = T.rewrite_stat(HOST_STAT, T.StatView(7, "a) b (c)", "S", 1, 7, 1, 7))
    assert out.startswith("7 (a) b (c)) S 1 7 1 34816 7 ")
    assert len(T.split_stat(out)[2]) == 50 and out.endswith("\n")


def test_stat_hides_addresses_from_strangers():
    out = T.rewrite_stat(HOST_STAT, T.StatView(7, "x", "S", 1, 7, 1, -1, hide_addrs=True))
    f = T.split_stat(out)[2]
    assert f[26 - 3] == "0" and f[35 - 3] == "0" and f[51 - 3] == "0"
    assert f[22 - 3] == "123"                       # starttime stays


def test_synth_stat_has_52_fields():
    out = T.synth_stat(T.StatView(9, "z", "Z", 1, 0, 0), start_ticks=55, threads=1)
    assert len(out.split()) == 52 and T.stat_field(out, 22) == "55"


def _view(**kw):
    v = dict(name="sh", state="S", tgid=3, pid=4, ppid=1, pgrp=3, session=1, umask=0o027,
             uids=(1, 2, 3, 4), gids=(5, 6, 7, 8), groups=[10])
    v.update(kw)
    return T.StatusView(**v)


def test_status_rewrite_keeps_host_lines_and_replaces_ours():
    host = ("Name:\tmemfd\nUmask:\t0022\nState:\tt (tracing stop)\nTgid:\t999\nPid:\t1000\n"
            "PPid:\t5\nTracerPid:\t77\nUid:\t0\t0\t0\t0\nVmRSS:\t 12 kB\nNSpid:\t1000\n"
            "Seccomp:\t2\nNoNewPrivs:\t1\n")
    out = T.rewrite_status(host, _view(name="a\\b\nc"))
    lines = dict(line.split(":\t", 1) for line in out.splitlines())
    assert lines["Name"] == "a\\\\b\\nc" and lines["Umask"] == "0027"
    assert lines["State"] == "S (sleeping)" and lines["TracerPid"] == "0"
    assert (lines["Tgid"], lines["Pid"], lines["PPid"], lines["NSpid"]) == ("3", "4", "1", "4")
    assert lines["Uid"] == "1\t2\t3\t4" and lines["VmRSS"] == " 12 kB"
    assert lines["Seccomp"] == "0" and lines["NoNewPrivs"] == "0"


def test_synth_status():
    out = T.synth_status(_view(state="Z"))
    assert out.startswith("Name:\tsh\nUmask:\t0027\nState:\tZ (zombie)\n")
    assert "Groups:\t10 \n" in out and "Threads:\t1\n" in out


def test_maps_rewrite():
    host = ("00400000-00401000 r-xp 00000000 fe:00 1234                       /host/bin/x\n"
            "7f00-7f01 rw-p 00000000 00:00 0 \n"
            "7f01-7f02 rw-p 00000000 00:00 0                          [heap]\n"
            "7f02-7f03 r--p 00000000 103:1a 77                        /a b (deleted)\n")
    seen = []

    def rename(dev, ino, name):
        seen.append((dev, ino, name))
        return "/guest/x" if ino == 1234 else ""
    out = T.rewrite_maps(host, rename).splitlines()
    import os
    assert seen == [(os.makedev(0xfe, 0), 1234, "/host/bin/x"),
                    (os.makedev(0x103, 0x1a), 77, "/a b (deleted)")]
    assert out[0].index("/guest/x") == 73
    assert out[1] == "7f00-7f01 rw-p 00000000 00:00 0 "
    assert out[2].endswith("[heap]") and out[2].index("[heap]") == 73
    assert out[3] == "7f02-7f03 r--p 00000000 103:1a 77 "


def test_fdinfo():
    host = "pos:\t5\nflags:\t02\nmnt_id:\t99\nino:\t3\neventfd-count: 4\ninotify wd:1 ino:5\n"
    out = T.fdinfo_text(5, 0o2000002, 21, 8, host)
    assert out == "pos:\t5\nflags:\t02000002\nmnt_id:\t21\nino:\t8\neventfd-count: 4\n"


def test_meminfo_scaling():
    host = ("MemTotal:       16000000 kB\nMemFree:         8000000 kB\n"
            "MemAvailable:   12000000 kB\nBuffers:          500000 kB\nCached:  3000000 kB\n"
            "SwapTotal:       1000000 kB\nActive:          9000000 kB\nHugePages_Total:       0\n")
    assert "MemTotal:       16000000 kB\n" in T.meminfo_text(host, None)
    out = {k: int(v.split()[0]) for k, v in
           (line.split(":") for line in T.meminfo_text(host, 1 << 30, used=100 << 20)
            .splitlines())}
    assert out["MemTotal"] == 1 << 20
    assert out["MemFree"] == (1 << 20) - 100 * 1024
    assert out["Buffers"] + out["Cached"] <= out["MemTotal"] - out["MemFree"]
    assert out["SwapTotal"] == 1000000 and out["Active"] == 1 << 20
    assert out["HugePages_Total"] == 0


def test_small_files():
    assert T.loadavg_text("0.10 0.20 0.30 3/400 5000\n", 1, 4, 9) == "0.10 0.20 0.30 1/4 9\n"
    st = T.stat_text("cpu  1 2 3\nctxt 5\nprocesses 9999\nprocs_running 7\nprocs_blocked 1\n",
                     12, 2, 0)
    assert st == "cpu  1 2 3\nctxt 5\nprocesses 12\nprocs_running 2\nprocs_blocked 0\n"
    assert T.filesystems_text([("proc", False), ("ext2", True)]) == "nodev\tproc\n\text2\n"
    assert T.version_text("6.1.0-x", "#1 SMP").startswith("Linux version 6.1.0-x (")
    assert T.state_text("t") == "t (tracing stop)"
