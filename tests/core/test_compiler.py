"""Logical graph validation, chaining, partitioning, and graph export."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sage_core import LocalEnvironment, PipelineError
from sage_core.compiler.logical import EdgeSpec, OpKind, Partitioning
from sage_core.compiler.partitioners import partition_counts, stable_hash


def test_stream_without_sink_names_the_operator_and_the_fix() -> None:
    env = LocalEnvironment("v")
    env.from_batch([1]).map(lambda x: x, name="dangling")
    with pytest.raises(PipelineError, match=r"'dangling'.*add \.sink"):
        env.compile()


def test_join_without_keys_is_rejected() -> None:
    env = LocalEnvironment("v")
    a = env.from_batch([1])
    b = env.from_batch([2]).keyby(lambda x: x)
    a.join(b, lambda k, left, right: left).sink(print)
    with pytest.raises(PipelineError, match=r"input 0 .* is not keyed; call \.keyby"):
        env.compile()


def test_parallelism_below_one_is_rejected() -> None:
    env = LocalEnvironment("v")
    env.from_batch([1]).map(lambda x: x, parallelism=0).sink(print)
    with pytest.raises(PipelineError, match="parallelism=0; use an integer >= 1"):
        env.compile()


def test_cycle_is_rejected() -> None:
    env = LocalEnvironment("v")
    stream = env.from_batch([1]).map(lambda x: x)
    stream.sink(print)
    mapped = stream.map(lambda x: x)
    mapped.sink(print)
    env.logical.connect(mapped.op.id, stream.op.id, EdgeSpec())
    with pytest.raises(PipelineError, match="cycle"):
        env.compile()


def test_empty_pipeline_has_no_source() -> None:
    with pytest.raises(PipelineError, match="no source"):
        LocalEnvironment("v").compile()


def test_forward_edges_of_equal_parallelism_chain_into_one_task() -> None:
    env = LocalEnvironment("c")
    env.from_batch([1]).map(str).filter(bool).map(len).sink(print)
    graph = env.compile()
    assert len(graph.chains) == 1 and graph.task_count() == 1 and not graph.channels


def test_keyby_and_parallelism_changes_break_chains_with_the_right_partitioner() -> None:
    env = LocalEnvironment("c")
    env.from_batch([1]).map(str, parallelism=2).keyby(len).map(len, parallelism=3).sink(print)
    graph = env.compile()
    kinds = [c.partitioning for c in graph.channels]
    assert kinds == [Partitioning.ROUND_ROBIN, Partitioning.HASH, Partitioning.ROUND_ROBIN]
    assert graph.task_count() == 1 + 2 + 3 + 1
    assert [graph.operator(op).kind for op in graph.chains[graph.channels[1].source].operators] == [
        OpKind.MAP,
        OpKind.KEYBY,
    ]


def test_fan_out_does_not_chain() -> None:
    env = LocalEnvironment("c")
    stream = env.from_batch([1])
    stream.sink(print)
    stream.map(str).sink(print)
    assert len(env.compile().channels) == 2


def test_stable_hash_is_the_same_in_another_process() -> None:
    keys = ["alpha", "β", 12345, ("t", 1), b"raw", None]
    here = [stable_hash(k) for k in keys]
    code = "from sage_core.compiler.partitioners import stable_hash;" f"print([stable_hash(k) for k in {keys!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert there.stdout.strip() == str(here)


def test_hash_partitioning_spreads_keys() -> None:
    counts = partition_counts([f"user-{i}" for i in range(10_000)], 4)
    assert min(counts) > 2_000


def test_dot_and_mermaid_show_every_chain_and_channel() -> None:
    env = LocalEnvironment("c")
    env.from_batch([1]).keyby(str).map(str, parallelism=2).sink(print)
    graph = env.compile()
    dot, mermaid = graph.to_dot(), graph.to_mermaid()
    assert dot.startswith("digraph") and dot.count("->") == len(graph.channels) == 2
    assert mermaid.startswith("flowchart") and "|hash|" in mermaid and "×2" in mermaid


@pytest.mark.timeout(60)
def test_sage_graph_prints_a_pipeline_file_without_running_it(tmp_path) -> None:
    from click.testing import CliRunner

    from sage_core.cli import cli

    ran = tmp_path / "ran"
    script = tmp_path / "flow.py"
    script.write_text(
        "from sage_core import LocalEnvironment\n"
        "def parse(x):\n"
        f"    open({str(ran)!r}, 'w').close()\n"
        "    return x\n"
        "env = LocalEnvironment('g')\n"
        "env.from_batch([1, 2]).map(parse).keyby(lambda x: x).sink(print, parallelism=2)\n"
        "env.submit()\n"
    )
    result = CliRunner().invoke(cli, ["graph", str(script)])
    assert result.exit_code == 0, result.output
    assert "task source -> parse -> keyby  x1" in result.output
    assert "task print  x2" in result.output and "[hash]" in result.output
    assert not ran.exists(), "sage graph must not run the pipeline"
