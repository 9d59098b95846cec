"""A small runnable pipeline: word counts per key with parallel instances, printed at the end."""

from __future__ import annotations

from collections import Counter

from sage_core import FlatMapFunction, LocalEnvironment, SinkFunction

LINES = [
    "the quick brown fox jumps over the lazy dog",
    "the dog sleeps while the fox runs",
    "a fox is quick and a dog is lazy",
] * 1000


class Words(FlatMapFunction):
    """Split a line into lowercase words."""

    def execute(self, data: str) -> list[str]:
        return data.lower().split()


class CountWords(SinkFunction):
    """Count words per key; keyby guarantees a word always reaches the same instance."""

    totals: Counter = Counter()

    def execute(self, data: str) -> None:
        CountWords.totals[data] += 1


def main() -> None:
    """Build, run and report."""
    env = LocalEnvironment("wordcount")
    env.from_batch(LINES).flatmap(Words).keyby(lambda word: word).sink(CountWords, parallelism=2)
    job = env.submit(autostop=True)
    env.close()
    for word, count in CountWords.totals.most_common(5):
        print(f"{word:>8} {count}")
    ops = job.summary()["operators"]
    print(f"{sum(CountWords.totals.values())} words from {ops['source']['out']} lines, status {job.status}")


if __name__ == "__main__":
    main()
