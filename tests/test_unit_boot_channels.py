"""Console and serial line channels: spellings, refusals and how lines resolve."""
import pytest

from umlpy.boot import (MAX_CONSOLES, MAX_SERIAL_LINES, BootOptionError, Channel,
                        ChannelConfig, ChannelKind, LineChannels, LineOption, parse_channel,
                        parse_line_option, parse_line_spec, resolve_channels)

FD0, FD1 = Channel(ChannelKind.FD, fd=0), Channel(ChannelKind.FD, fd=1)
PTS, PTY = Channel(ChannelKind.PTS), Channel(ChannelKind.PTY)
NULL, NONE, XTERM = Channel(ChannelKind.NULL), Channel(ChannelKind.NONE), Channel(ChannelKind.XTERM)


def both(channel):
    return LineChannels(channel, channel)


CHANNELS = [
    ("fd:0", FD0),
    ("fd:17", Channel(ChannelKind.FD, fd=17)),
    ("null", NULL),
    ("none", NONE),
    ("port:9000", Channel(ChannelKind.PORT, port=9000)),
    ("port:1", Channel(ChannelKind.PORT, port=1)),
    ("port:65535", Channel(ChannelKind.PORT, port=65535)),
    ("pty", PTY),
    ("pts", PTS),
    ("tty:/dev/tty3", Channel(ChannelKind.TTY, path="/dev/tty3")),
    ("xterm", XTERM),
]


@pytest.mark.parametrize("text,channel", CHANNELS)
def test_channel_spellings_round_trip(text, channel):
    assert parse_channel(text) == channel
    assert channel.spec() == str(channel) == text


def test_kind_compares_with_its_spelling():
    assert parse_channel("fd:3").kind == "fd" and ChannelKind("xterm") is ChannelKind.XTERM


BAD_CHANNELS = [
    ("", "empty channel"),
    ("file:/tmp/log", "unknown channel"),
    ("FD:0", "unknown channel"),
    ("fd", "needs an argument, e.g. fd:0"),
    ("fd:", "needs an argument"),
    ("fd:-1", "expected a number"),
    ("fd:x", "expected a number"),
    ("fd:٣", "expected a number"),                 # a non-ASCII digit
    ("fd:99999999999", "file descriptor out of range"),
    ("port:0", "port out of range (1-65535)"),
    ("port:65536", "port out of range"),
    ("port:", "needs an argument, e.g. port:9000"),
    ("tty:", "needs an argument, e.g. tty:/dev/tty3"),
    ("tty:tty3", "absolute host path"),
    ("pts:2", "'pts' takes no argument"),
    ("xterm:foo", "'xterm' takes no argument"),
    ("none:", "'none' takes no argument"),
]


@pytest.mark.parametrize("text,message", BAD_CHANNELS)
def test_bad_channels(text, message):
    with pytest.raises(BootOptionError) as exc:
        parse_channel(text)
    assert message in str(exc.value)


LINE_OPTIONS = [
    ("con=pts", LineOption("con", None, both(PTS))),
    ("con0=fd:0,fd:1", LineOption("con", 0, LineChannels(FD0, FD1))),
    ("con15=null", LineOption("con", 15, both(NULL))),
    ("ssl=port:9000", LineOption("ssl", None, both(Channel(ChannelKind.PORT, port=9000)))),
    ("ssl63=none", LineOption("ssl", 63, both(NONE))),
    ("ssl3=tty:/dev/tty2,xterm",
     LineOption("ssl", 3, LineChannels(Channel(ChannelKind.TTY, path="/dev/tty2"), XTERM))),
    ("con1=none,none", LineOption("con", 1, both(NONE))),
    ("con2=null,fd:1", LineOption("con", 2, LineChannels(NULL, FD1))),
]


@pytest.mark.parametrize("text,option", LINE_OPTIONS)
def test_line_options(text, option):
    assert parse_line_option(text) == option


BAD_LINE_OPTIONS = [
    ("con16=pts", "line number out of range (0-15)"),
    ("ssl64=pts", "line number out of range (0-63)"),
    ("con=", "missing channel (e.g. con=pts)"),
    ("ssl2=", "missing channel (e.g. ssl2=pts)"),
    ("con", "expected con[N]=<channel>"),
    ("ssl7", "expected con[N]=<channel>"),
    ("con=fd:0,fd:1,fd:2", "at most two channels"),
    ("con0=fd:0,", "empty channel"),
    ("con0=none,fd:1", "'none' cannot be combined"),
    ("con0=fd:0,none", "'none' cannot be combined"),
    ("con0=fd:0,port:0", "con0=fd:0,port:0: port:0: port out of range"),
    ("con1=port:0", "con1=port:0: port out of range"),
    ("ssl=file:/x", "unknown channel"),
]


@pytest.mark.parametrize("text,message", BAD_LINE_OPTIONS)
def test_bad_line_options_name_the_option(text, message):
    with pytest.raises(BootOptionError) as exc:
        parse_line_option(text)
    line = str(exc.value)
    assert message in line and line.startswith(text + ":") and "\n" not in line


def test_defaults():
    table = resolve_channels([])
    assert table == ChannelConfig()
    assert len(table.consoles) == MAX_CONSOLES == 16
    assert len(table.serial_lines) == MAX_SERIAL_LINES == 64
    assert table.console(0) == LineChannels(FD0, FD1)
    assert all(line == both(PTS) for line in table.consoles[1:])
    assert all(line == both(PTS) for line in table.serial_lines)
    assert repr(table) == "ChannelConfig(con0=fd:0,fd:1 con1-15=pts ssl0-63=pts)"


@pytest.mark.parametrize("options", [
    ["ssl=pty", "ssl0=tty:/dev/tty0", "ssl1=tty:/dev/tty1"],      # the HOWTO's example
    ["ssl0=tty:/dev/tty0", "ssl1=tty:/dev/tty1", "ssl=pty"],      # any order
    ["ssl1=tty:/dev/tty1", "ssl=pty", "ssl0=tty:/dev/tty0"],
])
def test_specific_lines_override_the_general_setting_whatever_the_order(options):
    table = resolve_channels(options)
    assert table.serial(0).spec() == "tty:/dev/tty0"
    assert table.serial(1).spec() == "tty:/dev/tty1"
    assert all(line == both(PTY) for line in table.serial_lines[2:])


@pytest.mark.parametrize("options", [
    ["con=pty", "con0=fd:0,fd:1"],
    ["con0=fd:0,fd:1", "con=pty"],
])
def test_general_setting_covers_line_zero_unless_it_is_named(options):
    table = resolve_channels(options)
    assert table.console(0) == LineChannels(FD0, FD1)
    assert all(line == both(PTY) for line in table.consoles[1:])


def test_general_setting_moves_line_zero_too():
    assert resolve_channels(["con=null"]).console(0) == both(NULL)


def test_consoles_and_serial_lines_are_independent():
    table = resolve_channels(["con=xterm", "ssl2=port:9000"])
    assert table.console(2) == both(XTERM)
    assert table.serial(2).spec() == "port:9000" and table.serial(3) == both(PTS)


def test_last_setting_of_a_line_wins():
    table = resolve_channels(["con1=pty", "con1=null", "con=xterm", "con=pts"])
    assert table.console(1) == both(NULL) and table.console(2) == both(PTS)


def test_other_options_are_ignored():
    assert resolve_channels(["mem=1G", "console=tty0", "ubd0=x"]) == ChannelConfig()


def test_line_helpers():
    line = parse_line_spec("tty:/dev/tty2,xterm")
    assert line.exists and line.spec() == "tty:/dev/tty2,xterm"
    assert repr(line) == "LineChannels('tty:/dev/tty2,xterm')"
    assert not parse_line_spec("none").exists
    assert parse_line_spec("fd:0,fd:0").spec() == "fd:0"
    assert parse_line_option("ssl12=pty").key == "ssl12"
    assert parse_line_option("ssl=pty").key == "ssl"


def test_repr_folds_runs():
    table = resolve_channels(["con1=port:9000", "ssl=pty", "ssl3=tty:/dev/tty2,xterm"])
    assert repr(table) == ("ChannelConfig(con0=fd:0,fd:1 con1=port:9000 con2-15=pts "
                           "ssl0-2=pty ssl3=tty:/dev/tty2,xterm ssl4-63=pty)")
