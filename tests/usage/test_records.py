"""Usage records' ids: unique, rising within a process, and a process of their own in a forked child."""

from __future__ import annotations

import os

from gptrelay.usage.records import new_record_id


def test_record_ids_are_unique_and_rise_within_a_process() -> None:
    ids = [new_record_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)  # the column holds 32 characters


def test_a_forked_process_makes_ids_of_its_own() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, to the parent
        os.write(write, new_record_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    mine = new_record_id()
    assert len(child) == 32 and child[:16] != mine[:16]
