"""The benchmark machinery end to end, at a tiny size: it starts, measures and reports.

No timing is asserted (the machine is shared); only that every part answered.
"""

from __future__ import annotations

import shutil

import pytest

from bench.http import ENDPOINTS, Options, measure, table, verdicts
from bench.wrk import Load

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed"),
]


def test_bench_measures_every_endpoint_at_every_depth_against_the_ceiling() -> None:
    options = Options(
        depths=[0, 40],
        load=Load(threads=1, connections=2, duration_s=1),
        repeat=1,
        reservation_ms=0,
        endpoints=list(ENDPOINTS),
    )

    rows = measure(options, log=False)

    assert [(row.depth, row.endpoint) for row in rows] == [
        (depth, endpoint) for depth in (0, 40) for endpoint in ENDPOINTS
    ]
    for row in rows:
        assert row.answered > 0 and row.ceiling_rps > 0
        assert all(run.socket_errors == 0 for run in row.runs + row.ceilings)
    by_key = {(row.depth, row.endpoint): row for row in rows}
    assert by_key[(0, "getJobStatus")].non_2xx == by_key[(0, "getJobStatus")].answered  # 404s
    assert by_key[(40, "getJobStatus")].non_2xx == 0
    assert by_key[(40, "getNextJob")].non_2xx == 0
    assert by_key[(0, "addJob")].non_2xx == 0  # the fake hCaptcha accepted every captcha
    report = table(rows)
    assert "getJobStatus" in report and "ratio" in report
    assert any("getJobStatus >= 0.6x ceiling at 40" in line for line in verdicts(rows))


def test_bench_sweep_prints_both_rows_and_the_repeat_recovers_in_one_interval(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench.sweep import main

    assert main(["--jobs", "250", "--interval", "0.01"]) == 0
    rows = {line[:31].strip(): line.split()[-2:] for line in capsys.readouterr().out.splitlines()}
    assert rows["repeats full batches (now)"][0] == "1"
    assert rows["one batch per interval (before)"][0] == "3"
