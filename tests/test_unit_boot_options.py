"""The UML boot command line: every option, its defaults, repeats and refusals."""
import pytest

from umlpy.block import UbdSpec
from umlpy.boot import (DEFAULT_MEM, HELP, BootConfig, BootOptionError, ChannelConfig,
                        check_option, merge_options, option_key, parse_boot_args, parse_size,
                        split_init_args, ubd_index_of_root)
from umlpy.boot import options as options_module

M = 1024 * 1024


def boot(line: str) -> BootConfig:
    return parse_boot_args(line.split())


def test_empty_line_gives_the_documented_defaults():
    config = parse_boot_args([])
    assert config == BootConfig(ubd={0: UbdSpec(0, "root_fs")})
    assert config.mem == DEFAULT_MEM == 64 * M
    assert config.root == "/dev/ubda" and config.read_only_root
    assert config.init is None and config.init_args == []
    assert config.init_env == {"HOME": "/", "TERM": "linux"}
    assert config.umid is None and config.uml_dir == "~/.uml/"
    assert config.consoles == ChannelConfig()
    assert config.net == {} and not config.quiet and not config.noreboot
    assert not config.show_help and not config.show_version


def test_the_example_line_of_the_issue():
    config = boot("ubd0=root_fs mem=256M init=/bin/sh umid=vm1 root=/dev/ubda "
                  "rootfstype=hostfs rootflags=/dir hostfs=/dir con0=fd:0,fd:1 "
                  "con1=port:9000 ssl=pty eth0=slirp quiet rw")
    assert config.ubd == {0: UbdSpec(0, "root_fs")}
    assert config.mem == 256 * M
    assert config.init == "/bin/sh" and config.umid == "vm1"
    assert (config.root, config.rootfstype, config.rootflags) == ("/dev/root", "hostfs", "/dir")
    assert config.hostfs == "/dir" and not config.read_only_root and config.quiet
    assert config.consoles.console(0).spec() == "fd:0,fd:1"
    assert config.consoles.console(1).spec() == "port:9000"
    assert config.consoles.serial(5).spec() == "pty"
    assert config.net == {0: "slirp"} and config.net_transport(0) == "slirp"


ACCEPTED = [
    ("mem=128M", "mem", 128 * M),
    ("mem=1G", "mem", 1024 * M),
    ("mem=16384k", "mem", 16 * M),
    ("mem=268435456", "mem", 256 * M),
    ("root=/dev/ubdb ubd1=disk", "root", "/dev/ubdb"),
    ("rootfstype=ext2", "rootfstype", "ext2"),
    ("rootflags=errors=remount-ro", "rootflags", "errors=remount-ro"),
    ("ro", "read_only_root", True),
    ("rw", "read_only_root", False),
    ("rw ro", "read_only_root", True),
    ("ro rw", "read_only_root", False),
    ("hostfs=/srv/share", "hostfs", "/srv/share"),
    ("init=/bin/sh", "init", "/bin/sh"),
    ("initrd=initrd.gz", "initrd", "initrd.gz"),
    ("umid=vm1", "umid", "vm1"),
    ("umid=" + "x" * 63, "umid", "x" * 63),
    ("uml_dir=/run/uml", "uml_dir", "/run/uml"),
    ("eth0=slirp eth3=tuntap,,,192.168.0.254", "net", {0: "slirp", 3: "tuntap,,,192.168.0.254"}),
    ("eth1=mcast", "net", {1: "mcast"}),
    ("eth0=daemon eth1=vde eth2=pcap eth4=slip eth5=ethertap,tap0", "net",
     {0: "daemon", 1: "vde", 2: "pcap", 4: "slip", 5: "ethertap,tap0"}),
    ("quiet", "quiet", True),
    ("noreboot", "noreboot", True),
    ("mconsole=notify:/tmp/notify.sock", "mconsole_notify", "/tmp/notify.sock"),
    ("hostname=box", "hostname", "box"),
    ("TERM=vt100", "init_env", {"HOME": "/", "TERM": "vt100"}),
    ("LANG=C.UTF-8 EMPTY=", "init_env", {"HOME": "/", "TERM": "linux", "LANG": "C.UTF-8",
                                         "EMPTY": ""}),
    ("single", "init_args", ["single"]),
    ("S 3 emergency rescue", "init_args", ["S", "3", "emergency", "rescue"]),
    ("init=/bin/sh -- -c echo hi", "init_args", ["-c", "echo", "hi"]),
    ("1 -- --login", "init_args", ["1", "--login"]),
    ("-- mem=1G ubd0=x --help", "init_args", ["mem=1G", "ubd0=x", "--help"]),
    ("mem=128M mem=256M", "mem", 256 * M),                   # the last scalar wins
    ("init=/a init=/b", "init", "/b"),
]


@pytest.mark.parametrize("line,attribute,expected", ACCEPTED)
def test_accepted(line, attribute, expected):
    assert getattr(boot(line), attribute) == expected


def test_values_may_hold_spaces_and_equals_signs():
    config = parse_boot_args(["hostfs=/home/me/My Files", "ubd1=/img/a b=c"])
    assert config.hostfs == "/home/me/My Files"
    assert config.ubd[1] == UbdSpec(1, "/img/a b=c")


REFUSED = [
    ("mem=12Q", "mem=12Q: expected a size like 256M"),
    ("mem=", "mem=: expected a size like 256M"),
    ("mem=-1M", "expected a size like 256M"),
    ("mem=256MB", "expected a size like 256M"),
    ("mem=0", "at least 16M is needed"),
    ("mem=8M", "at least 16M is needed"),
    ("mem=256", "at least 16M is needed (did you mean 256M?)"),
    ("mem", "missing '=<value>'"),
    ("root=", "empty value"),
    ("init=", "empty value"),
    ("rootfstype=", "empty value"),
    ("umid=", "empty value"),
    ("umid=a/b", "single directory name"),
    ("umid=..", "single directory name"),
    ("umid=" + "x" * 64, "longer than 63 characters"),
    ("umid=a\tb", "unprintable"),
    ("hostname=" + "h" * 65, "at most 64 printable characters"),
    ("mconsole=/tmp/s", "expected mconsole=notify:<socket path>"),
    ("mconsole=notify:", "empty value"),
    ("eth0=wifi", "unknown transport 'wifi'"),
    ("eth0=", "unknown transport ''"),
    ("eth16=slirp", "device number out of range (0-15)"),
    ("eth0", "missing '=<transport>,...'"),
    ("quiet=1", "'quiet' takes no value"),
    ("rw=yes", "'rw' takes no value"),
    ("quite", "unknown option"),
    ("console=tty0", "unknown option"),
    ("loglevel=3", "unknown option"),
    ("printk.time=1", "unknown option"),
    ("Term=xterm", "unknown option"),
    ("=x", "unknown option"),
    ("-v", "unknown switch"),
    ("--frobnicate", "unknown switch"),
    ("ubd0x=img", "unknown flag 'x'"),
    ("ubd0", "missing '='"),
    ("ubd16=img", "out of range"),
    ("con1=port:0", "port out of range"),
    ("ssl=bogus", "unknown channel"),
]


@pytest.mark.parametrize("option,message", REFUSED)
def test_refused_with_one_line_naming_the_option(option, message):
    with pytest.raises(BootOptionError) as exc:
        parse_boot_args(["ubd1=ok", option, "quiet"])
    line = str(exc.value)
    assert message in line and "\n" not in line
    assert line.startswith(option + ":")


@pytest.mark.parametrize("option,message", REFUSED)
def test_check_option_refuses_the_same_alone(option, message):
    with pytest.raises(BootOptionError, match=None) as exc:
        check_option(option)
    assert str(exc.value).startswith(option + ":")


REFUSED_TOGETHER = [
    ("ubd0=a ubda=b", "ubda=b: ubd0 is already configured"),
    ("eth0=slirp eth0=tuntap", "eth0=tuntap: eth0 is already configured"),
    ("root=/dev/ubdc", "root=/dev/ubdc: ubd2 is not configured (add ubd2=<file>)"),
    ("root=98:16", "root=98:16: ubd1 is not configured (add ubd1=<file>)"),
]


@pytest.mark.parametrize("line,message", REFUSED_TOGETHER)
def test_conflicts_between_options(line, message):
    with pytest.raises(BootOptionError) as exc:
        boot(line)
    assert str(exc.value) == message


@pytest.mark.parametrize("line,ubd", [
    ("", {0: UbdSpec(0, "root_fs")}),                                  # root on ubda
    ("root=/dev/ubda1", {0: UbdSpec(0, "root_fs")}),
    ("root=98:0", {0: UbdSpec(0, "root_fs")}),
    ("ubd0r=base.img", {0: UbdSpec(0, "base.img", read_only=True)}),
    ("root=/dev/ubdb ubd1=data", {1: UbdSpec(1, "data")}),            # root on ubdb
    ("root=/dev/ubdb ubd0=a ubd1=b", {0: UbdSpec(0, "a"), 1: UbdSpec(1, "b")}),
    ("root=/dev/root rootfstype=hostfs", {}),                          # no ubd at all
    ("rootfstype=hostfs rootflags=/srv/root", {}),
    ("rootfstype=hostfs ubd1=d", {1: UbdSpec(1, "d")}),
    ("root=LABEL=guest", {}),                                          # not a ubd name
    ("root=/dev/sda1", {}),
])
def test_default_root_fs_only_when_the_root_is_ubd0(line, ubd):
    assert boot(line).ubd == ubd


def test_hostfs_root_without_root_option_names_dev_root():
    config = boot("rootfstype=hostfs rootflags=/srv/root")
    assert config.root == "/dev/root" and config.root_ubd_index is None


@pytest.mark.parametrize("root,index", [
    ("/dev/ubda", 0), ("/dev/ubdb", 1), ("/dev/ubdp", 15), ("/dev/ubdc2", 2),
    ("/dev/ubd0", 0), ("/dev/ubd3", 3), ("98:0", 0), ("98:32", 2), ("98:17", 1),
    ("/dev/root", None), ("/dev/sda", None), ("8:0", None), ("/dev/ubdz", None),
])
def test_ubd_index_of_root(root, index):
    assert ubd_index_of_root(root) == index


@pytest.mark.parametrize("text,size", [
    ("0", 0), ("4096", 4096), ("1K", 1024), ("1k", 1024), ("3M", 3 * M), ("2g", 2048 * M),
    ("1T", 1 << 40),
])
def test_parse_size(text, size):
    assert parse_size("mem=" + text, text) == size


@pytest.mark.parametrize("line,help_,version", [
    ("--help", True, False),
    ("--version", False, True),
    ("mem=bad --help quite", True, False),          # help wins: the rest is not checked
    ("--version --help", True, True),
])
def test_help_and_version_are_returned_not_printed(line, help_, version, capsys):
    config = boot(line)
    assert (config.show_help, config.show_version) == (help_, version)
    assert capsys.readouterr() == ("", "")


def test_help_after_separator_is_an_init_argument():
    config = boot("init=/bin/prog -- --help")
    assert not config.show_help and config.init_args == ["--help"]


def test_command_line_is_kept_but_not_compared():
    a, b = boot("quiet mem=256M"), boot("mem=256M quiet")
    assert a.command_line == ["quiet", "mem=256M"] and a == b


def test_help_text_names_every_option():
    for key in options_module._VALUE_OPTIONS:
        assert f"{key}=" in HELP
    for word in ("ro", "rw", "quiet", "noreboot", "ubd<N>", "con[N]=", "ssl[N]=", "eth<N>=",
                 "--help", "--version"):
        assert word in HELP


@pytest.mark.parametrize("option,key", [
    ("ubd0=a", "ubd0"), ("ubdar=b", "ubd0"), ("ubd1=x", "ubd1"), ("ubdzz=x", "ubdzz=x"),
    ("con=pts", "con"), ("con0=fd:0,fd:1", "con0"), ("ssl12=pty", "ssl12"),
    ("eth0=slirp", "eth0"), ("eth00=x", "eth0"), ("ro", "ro/rw"), ("rw", "ro/rw"),
    ("mem=1G", "mem"), ("TERM=vt100", "TERM"), ("quiet", "quiet"), ("single", "single"),
])
def test_option_key(option, key):
    assert option_key(option) == key


@pytest.mark.parametrize("base,override,merged", [
    ("mem=64M quiet", "mem=1G", "quiet mem=1G"),
    ("ubd0=a ubd1=b", "ubda=c", "ubd1=b ubda=c"),
    ("ro", "rw", "rw"),
    ("con=pts con1=port:9000", "con=null", "con1=port:9000 con=null"),
    ("eth0=slirp", "eth1=tuntap", "eth0=slirp eth1=tuntap"),
    ("init=/bin/sh -- -x", "quiet", "init=/bin/sh quiet -- -x"),
    ("init=/bin/sh -- -x", "-- -c true", "init=/bin/sh -- -c true"),
    ("", "mem=1G --", "mem=1G --"),
])
def test_merge_options(base, override, merged):
    assert merge_options(base.split(), override.split()) == merged.split()


def test_file_options_are_overridden_by_the_command_line():
    config = parse_boot_args(["mem=1G", "ubda=mine.img", "rw"],
                             file_options=["mem=64M", "ubd0=theirs.img", "ro", "quiet"])
    assert config.mem == 1024 * M and config.ubd == {0: UbdSpec(0, "mine.img")}
    assert not config.read_only_root and config.quiet


@pytest.mark.parametrize("argv,split", [
    ([], ([], None)),
    (["a", "--", "b", "--", "c"], (["a"], ["b", "--", "c"])),
    (["--"], ([], [])),
])
def test_split_init_args(argv, split):
    assert split_init_args(argv) == split
