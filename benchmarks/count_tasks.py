"""Scheduler preload for benchmarks/cluster_by_hand.sh: counts the tasks that finished, by name."""

from collections import Counter

from dask.utils import key_split
from distributed.diagnostics.plugin import SchedulerPlugin


class CountTasks(SchedulerPlugin):
    """Tasks that reached memory on this scheduler, by key prefix (the task function's name)."""

    name = "count-tasks"

    def __init__(self):
        self.counts = Counter()

    def transition(self, key, start, finish, *args, **kwargs):
        if finish == "memory":
            self.counts[key_split(key)] += 1


def dask_setup(scheduler):
    scheduler.add_plugin(CountTasks())
