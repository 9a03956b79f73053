"""The ubd command-line option: table of accepted and refused spellings."""
import pytest

from umlpy.block import (BlockError, UbdSpec, collect_ubd_specs, default_root_spec,
                         device_name, device_numbers, parse_ubd_option)

GOOD = [
    ("ubd0=root_fs", UbdSpec(0, "root_fs")),
    ("ubda=root_fs", UbdSpec(0, "root_fs")),
    ("ubdp=x", UbdSpec(15, "x")),
    ("ubd15=x", UbdSpec(15, "x")),
    ("ubd1=cow,back", UbdSpec(1, "cow", backing="back")),
    ("ubd1=cow:back", UbdSpec(1, "cow", backing="back")),
    ("ubd1=cow,back,SER1", UbdSpec(1, "cow", backing="back", serial="SER1")),
    ("ubd1=cow:back:SER1", UbdSpec(1, "cow", backing="back", serial="SER1")),
    ("ubd1=img,,SER1", UbdSpec(1, "img", serial="SER1")),
    ("ubd1=img,", UbdSpec(1, "img")),
    ("ubd2r=img", UbdSpec(2, "img", read_only=True)),
    ("ubd2s=img", UbdSpec(2, "img", sync=True)),
    ("ubd2d=img", UbdSpec(2, "img", data_only=True)),
    ("ubd2c=img", UbdSpec(2, "img", shared=True)),
    ("ubd2t=img", UbdSpec(2, "img", no_trim=True)),
    ("ubd2tcsr=a,b", UbdSpec(2, "a", "b", None, True, True, False, True, True)),
    ("ubdbrr=img", UbdSpec(1, "img", read_only=True)),                # repeated flag
    ("ubd3rscdt=img", UbdSpec(3, "img", None, None, True, True, True, True, True)),
    ("ubd0=/abs/path with space", UbdSpec(0, "/abs/path with space")),
    ("ubd0=a=b", UbdSpec(0, "a=b")),                                  # '=' in a name
]

BAD = [
    ("ubd=3", "missing device number"),
    ("ubdX=img", "missing device number"),
    ("ubd16=img", "out of range"),
    ("ubdq=img", "out of range"),
    ("ubd0", "missing '='"),
    ("ubd0r", "missing '='"),
    ("ubd0x=img", "unknown flag 'x'"),
    ("ubd0R=img", "unknown flag 'R'"),
    ("ubd0rrrrrrr=img", "too many flags"),
    ("ubd0=", "empty file name"),
    ("ubd0=,back", "empty file name"),
    ("ubd0d=cow,back", "'d' (data only) does not allow a backing file"),
    ("ubd0=a,b,c,d", "too many fields"),
    ("ubb0=img", "not a ubd option"),
]


@pytest.mark.parametrize("text,spec", GOOD)
def test_accepted(text, spec):
    assert parse_ubd_option(text) == spec


@pytest.mark.parametrize("text,message", BAD)
def test_refused_with_one_line(text, message):
    with pytest.raises(BlockError) as exc:
        parse_ubd_option(text)
    line = str(exc.value)
    assert message in line and "\n" not in line
    assert line.startswith(text + ":")
    assert isinstance(exc.value, OSError)


def test_device_names_and_numbers():
    assert [device_name(i) for i in (0, 1, 15)] == ["ubda", "ubdb", "ubdp"]
    assert device_numbers(0) == (98, 0)
    assert device_numbers(2) == (98, 32)
    with pytest.raises(BlockError):
        device_name(16)


def test_spec_helpers():
    spec = parse_ubd_option("ubdc=cow,back")
    assert spec.label == "ubd2"
    assert spec.config_string() == "cow,back"
    assert parse_ubd_option("ubd0=img").config_string() == "img"


def test_default_root_and_collect(tmp_path):
    assert default_root_spec() == UbdSpec(0, "root_fs")
    assert default_root_spec(str(tmp_path)).file == str(tmp_path / "root_fs")
    specs = collect_ubd_specs(["mem=64M", "ubd1=b.img", "init=/bin/sh"])
    assert sorted(specs) == [0, 1] and specs[0].file == "root_fs"
    specs = collect_ubd_specs(["ubda=mine"])
    assert specs[0].file == "mine"
    assert collect_ubd_specs(["ubd1=x"], default_root=False).keys() == {1}
    with pytest.raises(BlockError, match="ubd0 is already configured"):
        collect_ubd_specs(["ubd0=a", "ubda=b"])
