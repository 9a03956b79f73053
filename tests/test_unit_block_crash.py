"""Crash safety: a process writing through a COW device is SIGKILLed at random moments;
every record it reported flushed must be intact on reopening, the rest untouched."""
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from umlpy.block import CowDevice, open_ubd, parse_ubd_option

REPO = Path(__file__).resolve().parents[1]
RECORD = 4096
RECORDS = 1024
SKEW = 100                                  # records straddle sectors: partial-sector writes

WRITER = """
import os, sys
sys.path.insert(0, {repo!r})
from umlpy.block import open_ubd, parse_ubd_option
dev = open_ubd(parse_ubd_option(sys.argv[1]))
out = int(sys.argv[2])
for i in range({records}):
    dev.write(i * {record} + {skew}, (b"REC%08d" % i).ljust({record}, bytes([i % 251])))
    dev.flush()
    os.write(out, b"%d\\n" % i)
os.write(out, b"done\\n")
sys.stdin.read()
"""


def record(i: int) -> bytes:
    return (b"REC%08d" % i).ljust(RECORD, bytes([i % 251]))


def run_and_kill(option: str, delay: float) -> int:
    """Start a writer, kill it `delay` s after its first flush; how many it reported."""
    rfd, wfd = os.pipe()
    code = WRITER.format(repo=str(REPO), records=RECORDS, record=RECORD, skew=SKEW)
    proc = subprocess.Popen([sys.executable, "-c", code, option, str(wfd)],
                            pass_fds=(wfd,), stdin=subprocess.PIPE)
    os.close(wfd)
    buf, deadline = b"", None
    try:
        while b"done" not in buf:
            timeout = 30 if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([rfd], [], [], timeout)
            if not ready:
                break
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            buf += chunk
            if deadline is None:
                deadline = time.monotonic() + delay
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        while True:                          # reports written before the kill count too
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            buf += chunk
    finally:
        os.close(rfd)
        if proc.poll() is None:
            proc.kill()
    return len([line for line in buf.split(b"\n") if line.isdigit()])


@pytest.mark.parametrize("trial", range(4))
def test_kill_minus_nine_keeps_every_flushed_record(tmp_path, trial):
    rng = random.Random(trial)
    backing = tmp_path / "back.img"
    base = rng.randbytes(RECORDS * RECORD + 4096)
    backing.write_bytes(base)
    option = f"ubd0={tmp_path}/c.cow,{backing}"
    reported = run_and_kill(option, rng.uniform(0.0, 0.1))
    with open_ubd(parse_ubd_option(option)) as dev:          # header and bitmap valid
        assert isinstance(dev, CowDevice)
        for i in range(reported):
            assert dev.read(i * RECORD + SKEW, RECORD) == record(i), f"record {i} lost"
        assert dev.read(0, SKEW) == base[:SKEW]
        # past the record that may have been in flight, nothing changed
        tail = (reported + 1) * RECORD + SKEW
        assert dev.read(tail, len(base) - tail) == base[tail:]
