"""Error policies and record accounting: every record reaches a sink or is reported."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from sage_core import JobFailed, LocalEnvironment, MapFunction


class Explode(MapFunction):
    def execute(self, data: int) -> int:
        if data % 7 == 3:
            raise ValueError(f"bad record {data}")
        return data


def build(policy: str, sink: list) -> LocalEnvironment:
    env = LocalEnvironment("errors", config={"job": {"error_policy": policy}})
    env.from_batch(range(100)).map(Explode, name="explode").filter(lambda x: 1 / (x % 11) > 0, name="divide").sink(
        sink.append
    )
    return env


def test_fail_policy_raises_the_first_error_with_operator_and_record() -> None:
    env = build("fail", [])
    with pytest.raises(JobFailed) as failure:
        env.submit()
    env.close()
    assert failure.value.operator.startswith("explode") and failure.value.record == 3
    assert "bad record 3" in str(failure.value) and "error_policy" in str(failure.value)
    assert env.jobs[0].status == "failed"


def test_skip_policy_keeps_going_and_counts() -> None:
    got: list[int] = []
    env = build("skip", got)
    job = env.submit()
    env.close()
    expected = [x for x in range(100) if x % 7 != 3 and x % 11 != 0]
    assert sorted(got) == expected
    ops = job.summary()["operators"]
    assert ops["explode"]["failed"] == len([x for x in range(100) if x % 7 == 3])


def test_dead_letters_carry_record_operator_and_error() -> None:
    letters = []
    env = build("dead_letter", [])
    env.set_dead_letter_sink(letters.append)
    job = env.submit()
    env.close()
    assert [d.record for d in job.dead_letters()] == [d.record for d in letters]
    by_op = {(d.operator, d.record) for d in letters}
    assert ("explode", 3) in by_op and ("divide", 0) in by_op
    assert all("Error" in d.error for d in letters)


def test_every_record_is_accounted_for_under_injected_errors() -> None:
    pool = ThreadPoolExecutor(max_workers=4)

    def async_sometimes_fails(x: int) -> Future:
        def work() -> int:
            if x % 13 == 5:
                raise RuntimeError("service down")
            return x

        return pool.submit(work)

    def fan_out(x: int) -> list[int]:
        if x % 17 == 2:
            raise KeyError(x)
        return [x] * (x % 3)

    env = LocalEnvironment("accounting", config={"job": {"error_policy": "dead_letter"}})
    sunk: list[int] = []
    (
        env.from_batch(range(2_000))
        .map(Explode, parallelism=2)
        .map(async_sometimes_fails, capacity=32, ordered=False)
        .keyby(lambda x: x % 5)
        .flatmap(fan_out, parallelism=3)
        .filter(lambda x: x % 4 != 0)
        .sink(lambda x: sunk.append(x) if x % 19 != 1 else 1 / 0)
    )
    job = env.submit()
    env.close()
    pool.shutdown()
    ops = job.summary()["operators"]
    for name, figures in ops.items():
        assert figures["in"] == figures["out"] + figures["filtered"] + figures["failed"], name
    failed = sum(f["failed"] for f in ops.values())
    assert failed == len(job.dead_letters()) > 0
    sink = next(f for name, f in ops.items() if name.startswith("sink"))
    assert sink["out"] == len(sunk)
