"""`xgamma.workflow.progress`: the garbage collector spared while a graph is built and computed."""

from __future__ import annotations

import gc

import pytest

from xgamma.workflow.progress import collector_spared


@pytest.fixture
def nothing_frozen():
    if gc.get_freeze_count():
        gc.unfreeze()  # the test's own starting point; the tests restore it
    yield
    gc.unfreeze()


def test_collector_spared_freezes_what_exists_and_what_it_is_given_until_the_block_ends(nothing_frozen):
    with collector_spared() as spare:
        existing = gc.get_freeze_count()
        assert existing > 1000  # this process's modules, at least
        made = [[index] for index in range(5000)]  # containers: tracked by the collector
        spare()
        assert gc.get_freeze_count() >= existing + len(made) and gc.isenabled()
    assert gc.get_freeze_count() == 0


def test_collector_spared_collects_cyclic_garbage_made_in_the_block(nothing_frozen):
    import weakref

    class Node:
        pass

    with collector_spared():
        node = Node()
        node.self = node  # a cycle: only the collector frees it
        alive = weakref.ref(node)
        del node
        gc.collect()
        assert alive() is None


def test_collector_spared_leaves_objects_frozen_by_someone_else(nothing_frozen):
    gc.freeze()
    frozen = gc.get_freeze_count()
    with collector_spared() as spare:
        spare()
        assert gc.get_freeze_count() <= frozen  # nothing added (objects freed since leave the count)
    assert 0 < gc.get_freeze_count() <= frozen  # and not unfrozen
