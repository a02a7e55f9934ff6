"""The CPU accounting of stream-bench: counters read from /proc, a window cut out of the
samples (a fake clock and fake counters: no timed assertions)."""

import os

import pytest

from benchmarks.cpu import Counters, CpuSampler, read_counters


def sampler_with(samples):
    """A sampler that was fed these (wall time, counters) samples."""
    sampler = CpuSampler(1)
    sampler.samples = list(samples)
    return sampler


def test_a_window_is_split_into_the_process_the_rest_and_idle():
    # 2 cores over 10 s: the process used 15 CPU-s, the machine 18 busy of 20
    sampler = sampler_with(
        [
            (99.0, Counters(process=0.0, busy=0.0, total=0.0)),
            (100.0, Counters(process=1.0, busy=1.5, total=2.0)),
            (110.0, Counters(process=16.0, busy=19.5, total=22.0)),
            (111.0, Counters(process=17.0, busy=21.0, total=24.0)),
        ]
    )
    cores = sampler.cores(100.5, 109.5)  # the samples around it: 100 and 110
    assert cores == pytest.approx({"process": 1.5, "rest": 0.3, "idle": 0.2})


def test_a_window_without_samples_around_it_has_no_figure():
    sampler = sampler_with([(100.0, Counters(0, 0, 0)), (110.0, Counters(1, 1, 2))])
    assert sampler.cores(99.0, 105.0) is None  # no sample at or before the start
    assert sampler.cores(101.0, 111.0) is None  # none at or after the end
    assert sampler.cores(101.0, 109.0) == pytest.approx({"process": 0.1, "rest": 0.0, "idle": 0.1})


def test_the_sampler_stamps_each_reading_with_its_clock_and_stops():
    ticks = iter(range(100, 200))
    readings = iter(range(100))

    def read(pid):
        n = next(readings)
        return Counters(process=n, busy=2 * n, total=4 * n)

    with CpuSampler(7, interval=0.001, read=read, clock=lambda: float(next(ticks))) as s:
        while len(s.samples) < 3:
            pass
    count = len(s.samples)
    assert [t for t, _ in s.samples] == [float(100 + i) for i in range(count)]
    assert s.samples[-1][1] == Counters(count - 1, 2 * (count - 1), 4 * (count - 1))
    assert not s._thread.is_alive()


def test_a_process_that_has_ended_leaves_the_samples_taken():
    def read(pid):
        raise ProcessLookupError(pid)

    with CpuSampler(7, read=read) as sampler:
        pass
    assert sampler.samples == []


def test_the_counters_of_this_process_come_from_proc():
    before = read_counters(os.getpid())
    sum(i * i for i in range(2_000_000))  # some CPU time of its own
    after = read_counters(os.getpid())
    assert after.process > before.process
    assert 0 <= after.busy <= after.total
    assert after.total >= before.total


def test_the_counters_of_several_processes_are_summed():
    import subprocess
    import sys

    # a child that spends some CPU, says so, and then waits (alive) until told to end
    code = "import sys; sum(i * i for i in range(10**7)); print(1, flush=True); sys.stdin.read()"
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        child.stdout.readline()
        its_own = read_counters(child.pid).process
        mine = read_counters(os.getpid()).process
        both = read_counters(os.getpid(), child.pid).process
    finally:
        child.stdin.close()
        child.wait()
    assert its_own > 0.1
    assert both == pytest.approx(mine + its_own, abs=0.05)
