"""reboot(2) and syslog(2): a guest may halt, power off or restart its own
machine (never the host's), and read the kernel log (dmesg)."""
from __future__ import annotations

import errno

from umlpy.syscalls.call import Call
from umlpy.syscalls.registry import syscall

REBOOT_MAGIC1 = 0xFEE1DEAD
REBOOT_MAGIC2 = (672274793, 85072278, 369367448, 537993216)
CMD_RESTART, CMD_HALT, CMD_POWER_OFF = 0x01234567, 0xCDEF0123, 0x4321FEDC
CMD_RESTART2, CMD_CAD_ON, CMD_CAD_OFF = 0xA1B2C3D4, 0x89ABCDEF, 0x00000000
SHUTDOWN_KINDS = {CMD_RESTART: "restart", CMD_RESTART2: "restart", CMD_HALT: "halt",
                  CMD_POWER_OFF: "poweroff"}

# syslog(2) actions
(SYSLOG_CLOSE, SYSLOG_OPEN, SYSLOG_READ, SYSLOG_READ_ALL, SYSLOG_READ_CLEAR, SYSLOG_CLEAR,
 SYSLOG_CONSOLE_OFF, SYSLOG_CONSOLE_ON, SYSLOG_CONSOLE_LEVEL, SYSLOG_SIZE_UNREAD,
 SYSLOG_SIZE_BUFFER) = range(11)


@syscall("reboot")
def sys_reboot(c: Call) -> int:
    if c.task.creds.euid != 0:
        return -errno.EPERM
    if c.args[0] & 0xFFFFFFFF != REBOOT_MAGIC1 or c.args[1] & 0xFFFFFFFF not in REBOOT_MAGIC2:
        return -errno.EINVAL
    cmd = c.args[2] & 0xFFFFFFFF
    if cmd in (CMD_CAD_ON, CMD_CAD_OFF):
        c.kernel.cad_reboots = cmd == CMD_CAD_ON
        return 0
    kind = SHUTDOWN_KINDS.get(cmd)
    if kind is None:
        return -errno.EINVAL            # kexec, suspend: not on this machine
    c.kernel.shutdown(kind)
    return 0


@syscall("syslog")
def sys_syslog(c: Call) -> int:
    action, buf, length = c.int(0), c.ptr(1), c.int(2)
    log = c.kernel.kmsg
    if action in (SYSLOG_CLOSE, SYSLOG_OPEN):
        return 0
    if action == SYSLOG_SIZE_BUFFER:
        return log.size
    if c.task.creds.euid != 0 and action != SYSLOG_READ_ALL:
        return -errno.EPERM
    if action == SYSLOG_SIZE_UNREAD:
        return len(log.text(start=log.read_pos).encode())
    if action == SYSLOG_CLEAR:
        log.clear()
        return 0
    if action in (SYSLOG_CONSOLE_OFF, SYSLOG_CONSOLE_ON):
        log.console_level = 1 if action == SYSLOG_CONSOLE_OFF else 7
        return 0
    if action == SYSLOG_CONSOLE_LEVEL:
        if not 1 <= length <= 8:
            return -errno.EINVAL
        log.console_level = length
        return 0
    if action not in (SYSLOG_READ, SYSLOG_READ_ALL, SYSLOG_READ_CLEAR):
        return -errno.EINVAL
    if length < 0:
        return -errno.EINVAL
    if length == 0:
        return 0
    if action == SYSLOG_READ:
        data = log.text(start=log.read_pos).encode()[:length]
        log.read_pos += data.count(b"\n")
    else:
        data = log.text().encode()
        data = data[-length:] if len(data) > length else data     # the newest that fit
        if action == SYSLOG_READ_CLEAR:
            log.clear()
    c.write(buf, data)
    return len(data)
