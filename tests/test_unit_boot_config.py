"""coLinux-style configuration files: syntax, translations, errors, equivalence."""
import pytest

from umlpy.block import UbdSpec
from umlpy.boot import (BootOptionError, load_boot_config, parse_boot_args, parse_config_text,
                        read_config_file, split_config_switch)

M = 1024 * 1024

# The seed article's example.conf, with host paths instead of Windows ones.
COLINUX_EXAMPLE = """\
# The default kernel

kernel=vmlinux

# File contains the root file system.

cobd0="/srv/colinux/Debian-3.0r0.ext3.1gb"

# Swap device, should be an empty file with 128..512MB.

cobd1="/srv/colinux/swap_512Mb"

# Tell kernel the name of root device

root=/dev/cobd0

# Additional kernel parameters (ro = rootfs mount read only)

ro

# Initrd installs modules into the root file system.

initrd=initrd.gz

# Maximal memory for linux guest

mem=64

# Slirp for internet connection (outgoing)

eth0=slirp

# Tuntap as private network between guest and host on second linux device

eth1=tuntap
"""

EXAMPLE_COMMAND_LINE = ("ubd0=/srv/colinux/Debian-3.0r0.ext3.1gb ubd1=/srv/colinux/swap_512Mb "
                        "root=/dev/ubda ro initrd=initrd.gz mem=64M eth0=slirp eth1=tuntap")


def test_the_seed_example():
    options, notes = parse_config_text(COLINUX_EXAMPLE, "colinux.conf")
    assert options == EXAMPLE_COMMAND_LINE.split()
    assert notes == [
        "colinux.conf:3: kernel=vmlinux ignored: umlpy is the kernel",
        "colinux.conf:15: root=/dev/cobd0 read as root=/dev/ubda",
        "colinux.conf:27: mem=64 read as mem=64M (coLinux counts megabytes)",
    ]


def test_a_file_and_the_equivalent_command_line_give_equal_configs(tmp_path):
    path = tmp_path / "colinux.conf"
    path.write_text(COLINUX_EXAMPLE)
    from_file, _ = read_config_file(str(path))
    config = parse_boot_args([], file_options=from_file)
    assert config == parse_boot_args(EXAMPLE_COMMAND_LINE.split())
    assert config.ubd == {0: UbdSpec(0, "/srv/colinux/Debian-3.0r0.ext3.1gb"),
                          1: UbdSpec(1, "/srv/colinux/swap_512Mb")}
    assert config.mem == 64 * M and config.read_only_root
    assert config.net == {0: "slirp", 1: "tuntap"}


LINES = [
    ("", []),
    ("   \n\t\n", []),
    ("# only a comment\n   # indented comment", []),
    ("quiet # trailing comment", ["quiet"]),
    ("ubd0=disk#2", ["ubd0=disk#2"]),                        # '#' inside a word stays
    ("ubd0=disk\t#comment", ["ubd0=disk"]),
    ('ubd0="/my disks/root #1.img"  # root', ["ubd0=/my disks/root #1.img"]),
    ("ubd0='/a b'", ["ubd0=/a b"]),
    ('ubd0="c:\\coLinux\\root"', ["ubd0=c:\\coLinux\\root"]),   # no escapes
    ("mem = 128M", ["mem=128M"]),
    ("  umid=vm1  ", ["umid=vm1"]),
    ("mem=64", ["mem=64M"]),
    ("mem=2G", ["mem=2G"]),
    ("cobd2=/img", ["ubd2=/img"]),
    ("cobd3r=/img", ["ubd3r=/img"]),
    ("root=/dev/cobd1\ncobd1=/img", ["root=/dev/ubdb", "ubd1=/img"]),
    ("root=/dev/root\nrootfstype=hostfs", ["root=/dev/root", "rootfstype=hostfs"]),
    ("con0=fd:0,fd:1\nssl=pts", ["con0=fd:0,fd:1", "ssl=pts"]),
    ("TERM=vt100", ["TERM=vt100"]),
    ("single", ["single"]),
    ("mem=64M\r\nquiet\r\n", ["mem=64M", "quiet"]),           # written on Windows
    ("\ufeffquiet", ["quiet"]),                               # with a BOM
    ("mem=64M\nmem=128M", ["mem=64M", "mem=128M"]),           # the last wins at parse time
]


@pytest.mark.parametrize("text,options", LINES)
def test_lines(text, options):
    assert parse_config_text(text)[0] == options


BAD = [
    ("quiet\nmem=12Q", "cfg:2: mem=12Q: expected a size like 256M"),
    ("frobnicate=1", "cfg:1: frobnicate=1: unknown option"),
    ("cofs0=/host", "cfg:1: cofs0=/host: unknown option"),
    ("cobd0x=/img", "cfg:1: cobd0x=/img: unknown flag 'x'"),
    ("cobd16=/img", "cfg:1: cobd16=/img: device number out of range"),
    ("root=/dev/cobd16", "cfg:1: root=/dev/cobd16: device number out of range (0-15)"),
    ("root=/dev/ubda ro", "cfg:1: root=/dev/ubda ro: one option a line (quote a value"),
    ("root ro", "cfg:1: root ro: one option a line"),
    ('ubd0="/a b', "cfg:1: ubd0=\"/a b: unterminated or misplaced \" quote"),
    ('ubd0="a"b"', "cfg:1: ubd0=\"a\"b\": unterminated or misplaced \" quote"),
    ("ubd0='", "cfg:1: ubd0=': unterminated or misplaced ' quote"),
    ("\n\n--", "cfg:3: --: switches and init arguments go on the command line"),
    ("--help", "cfg:1: --help: switches and init arguments go on the command line"),
    ("ubd0=a\ncobd0=b", "cfg:2: cobd0=b: ubd0 is already configured at line 1"),
    ("mem=64\nmem=12Q", "cfg:2: mem=12Q: expected a size like 256M"),
    ("eth0=slirp\n\neth0=tuntap", "cfg:3: eth0=tuntap: eth0 is already configured at line 1"),
    ("con1=port:0", "cfg:1: con1=port:0: port out of range"),
    ("init=", "cfg:1: init=: empty value"),
]


@pytest.mark.parametrize("text,message", BAD)
def test_errors_carry_file_and_line(text, message):
    with pytest.raises(BootOptionError) as exc:
        parse_config_text(text, "cfg")
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_unreadable_files(tmp_path):
    with pytest.raises(BootOptionError, match=r"missing\.conf: cannot read the "
                                              r"configuration file: No such file"):
        read_config_file(str(tmp_path / "missing.conf"))
    binary = tmp_path / "binary.conf"
    binary.write_bytes(b"mem=64M\n\xff\xfe\n")
    with pytest.raises(BootOptionError, match="binary.conf: not a UTF-8 text file"):
        read_config_file(str(binary))


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "vm.conf"
    path.write_text("kernel=vmlinux\ncobd0=/img/root\nmem=64\nquiet\ncon=pts\n"
                    "con1=port:9000\nro\n")
    return str(path)


@pytest.mark.parametrize("switch", [["-c", "{}"], ["--config", "{}"], ["--config={}"]])
def test_load_boot_config_reads_the_named_file(conf, switch):
    argv = [word.format(conf) for word in switch] + ["mem=1G", "ubda=/img/mine", "rw",
                                                     "con=null", "--", "-x"]
    config, notes = load_boot_config(argv)
    assert config.mem == 1024 * M                                    # command line wins
    assert config.ubd == {0: UbdSpec(0, "/img/mine")}
    assert not config.read_only_root and config.quiet               # file's quiet kept
    assert config.consoles.console(2).spec() == "null"
    assert config.consoles.console(1).spec() == "port:9000"         # specific beats general
    assert config.init_args == ["-x"]
    assert len(notes) == 2 and notes[0].endswith(":1: kernel=vmlinux ignored: umlpy is the kernel")


def test_load_boot_config_without_a_file():
    config, notes = load_boot_config(["mem=256M"])
    assert config.mem == 256 * M and notes == []


def test_help_needs_no_file(tmp_path):
    config, notes = load_boot_config(["-c", str(tmp_path / "absent.conf"), "--help"])
    assert config.show_help and notes == []


@pytest.mark.parametrize("argv,message", [
    (["-c"], "-c: missing file name"),
    (["--config"], "--config: missing file name"),
    (["--config="], "--config=: missing file name"),
    (["-c", "a.conf", "-c", "b.conf"], "-c: only one configuration file"),
])
def test_bad_config_switches(argv, message):
    with pytest.raises(BootOptionError) as exc:
        load_boot_config(argv)
    assert str(exc.value) == message


def test_config_switch_after_separator_belongs_to_init():
    assert split_config_switch(["quiet", "--", "-c", "x"]) == (None, ["quiet", "--", "-c", "x"])
    assert split_config_switch(["-c", "f", "quiet"]) == ("f", ["quiet"])
