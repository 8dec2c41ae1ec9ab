"""Trunks first, and each trunk's head units as soon as that trunk is done (study/staged.py)."""
import threading

import pytest

from fgra_core.study.staged import map_staged


class Recorder:
    def __init__(self, block=None):
        self.lock = threading.Lock()
        self.started, self.exported = [], set()
        self.block = block or {}          # item -> event it waits for (10 s at most)
        self.events = {}
        self.waited = {}
        self.early = []                   # followers that started before their trunk was exported

    def event(self, name):
        return self.events.setdefault(name, threading.Event())

    def __call__(self, item):
        with self.lock:
            self.started.append(item)
            if "." in item and item.split(".")[0] not in self.exported:
                self.early.append(item)
        self.event(f"start {item}").set()
        if item in self.block:
            self.waited[item] = self.event(self.block[item]).wait(10)
        return item.upper()

    def on_first(self, item, result):
        assert result == item.upper()
        with self.lock:
            self.exported.add(item)


def key(item):
    return item.split(".")[0]


def test_a_free_slot_takes_a_finished_trunks_head_while_the_last_trunk_trains():
    # 3 trunks on 2 slots: trunk C trains alone in the last round unless a head of A or B starts beside it
    rec = Recorder(block={"C": "start A.1"})
    followers = {"A": ["A.1", "A.2"], "B": ["B.1"], "C": ["C.1"]}
    out = dict(map_staged(rec, ["A", "B", "C"], followers, key=key, jobs=2, on_first=rec.on_first))
    assert rec.waited["C"] is True                       # A.1 ran beside C
    assert out == {i: i.upper() for i in ["A", "B", "C", "A.1", "A.2", "B.1", "C.1"]}
    assert rec.early == []                               # no head before its trunk was done and exported
    assert rec.started.index("C.1") > rec.started.index("C")


def test_heads_of_trunks_already_done_are_ready_at_once_and_one_job_keeps_the_order():
    rec = Recorder()
    followers = {"A": ["A.1"], "old": ["old.1", "old.2"], None: ["x"]}
    got = [item for item, _ in map_staged(rec, ["A"], followers, key=key, jobs=1, on_first=rec.on_first)]
    assert got == ["A", "old.1", "old.2", "x", "A.1"] == rec.started     # as a pool of one would take them
    rec2 = Recorder(block={"A": "start old.1"})          # two slots: old.1 starts while A runs
    out = dict(map_staged(rec2, ["A"], followers, key=key, jobs=2))
    assert rec2.waited["A"] is True and len(out) == 5


def test_an_error_of_an_item_reaches_the_caller():
    def fn(item):
        if item == "B":
            raise ValueError("boom in B")
        return item

    with pytest.raises(ValueError, match="boom in B"):
        list(map_staged(fn, ["A", "B"], {"A": ["A.1"]}, key=key, jobs=2))
