"""umlpy.record: what the records that replaced dataclasses promise."""

from __future__ import annotations

import copy
import pickle

import pytest

from umlpy.host.seccomp import ArgIn, Ret
from umlpy.kernel.task import Creds
from umlpy.vfs.inode import Attr


def test_equality_repr_and_hashing():
    assert Attr(0o100644, 5, size=3) == Attr(0o100644, 5, size=3)
    assert Attr(0o100644, 5, size=3) != Attr(0o100644, 5, size=4)
    assert repr(Ret(7)) == "Ret(value=7)"
    with pytest.raises(TypeError):
        hash(Attr(0o100644, 5))         # mutable: unhashable, as a dataclass
    rule = ArgIn(1, (2, 3), Ret(1), Ret(2))
    assert {rule: "x"}[ArgIn(1, (2, 3), Ret(1), Ret(2))] == "x"


def test_frozen_records_refuse_changes_but_copy_and_pickle():
    r = Ret(5)
    with pytest.raises(AttributeError):
        r.value = 6
    assert copy.copy(r) == r and copy.deepcopy(r) == r
    assert pickle.loads(pickle.dumps(r)) == r


def test_copies_are_independent():
    a = Attr(0o100644, 5, uid=1)
    b = a.copy(uid=2)
    assert (a.uid, b.uid, b.ino) == (1, 2, 5)
    with pytest.raises(TypeError):
        a.copy(colour=1)
    c = Creds(groups=[1])
    d = c.clone()
    d.groups.append(2)
    assert c == Creds(groups=[1]) and d.groups == [1, 2]
    assert Creds().groups is not Creds().groups
