"""The benchmarks of this lane at a tiny size: bench.reads (Redis time per read, a
private engine) and bench.load --mixed (fifo and fair rounds through sdq cluster's
nginx, each simulated client from its own loopback address). Only that every part
answered and the figures are sane; no timing is asserted (the machine is shared)."""

from __future__ import annotations

import math

import pytest

from bench import mixed, reads
from bench.load import MixedArgs, parse
from sdq.cluster import find_nginx


def test_bench_reads_measures_every_read_at_every_depth(capsys: pytest.CaptureFixture[str]) -> None:
    assert reads.main(["--depths", "0", "30", "--reads", "30"]) == 0
    table = capsys.readouterr().out
    assert "| 30 |" in table and "v2 read before" in table
    assert "nan" not in table


def test_bench_load_takes_its_mixed_options() -> None:
    args = parse(["--mixed", "--heavy-jobs", "7", "--light", "3", "--rounds", "2"])
    assert args.mixed == MixedArgs(7, 3, 4, 400, 0.8, 2, 2)
    assert parse([]).workers == 8  # the load run keeps its own defaults
    assert mixed.light_address(0) != mixed.HEAVY_ADDRESS
    assert len({mixed.light_address(i) for i in range(600)}) == 600


@pytest.mark.slow
@pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed")
def test_bench_mixed_runs_both_modes_through_the_cluster(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = MixedArgs(heavy_jobs=6, light=3, workers=2, render_ms=50, spread=0.8, rounds=1,
                     replicas=1)  # fmt: skip
    assert mixed.run_mixed(args) == 0
    out = capsys.readouterr().out
    assert "| jobs complete, all rounds | 9/9 | 9/9 | |" in out
    for line in out.splitlines():
        if line.startswith("| light users' wait p95"):
            fifo, fair = (float(cell) for cell in line.split("|")[2:4])
            assert not math.isnan(fifo) and not math.isnan(fair)
