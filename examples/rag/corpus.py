"""The shipped corpus: passages to index and questions to answer (see ``examples/corpus/README.md``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

CORPUS_DIR = Path(__file__).resolve().parent.parent / "corpus"
PASSAGES_FILE = CORPUS_DIR / "passages.jsonl"
QUESTIONS_FILE = CORPUS_DIR / "questions.jsonl"


@dataclass(frozen=True)
class Passage:
    """One chunk of the corpus: a stable id (``ke-history-2``), its country, section, title and text."""

    id: str
    country: str
    section: str
    title: str
    text: str

    @property
    def document(self) -> str:
        """What is embedded and shown to the LLM: the title line, then the text."""
        return f"{self.title}\n{self.text}"

    @property
    def metadata(self) -> dict[str, str]:
        """What the vector store keeps beside the vector (the text travels with every hit)."""
        return {"title": self.title, "text": self.text, "country": self.country, "section": self.section}


@dataclass(frozen=True)
class Question:
    """A shipped question: its id, text, a short reference answer and the passage ids holding it."""

    id: str
    question: str
    answer: str
    evidence: str
    passages: tuple[str, ...]


def load_passages(path: Path = PASSAGES_FILE) -> list[Passage]:
    """Every passage of ``path`` (JSONL), in file order."""
    return [Passage(**row) for row in _rows(path, ("id", "country", "section", "title", "text"))]


def load_questions(path: Path = QUESTIONS_FILE, limit: int | None = None) -> list[Question]:
    """The first ``limit`` questions of ``path`` (JSONL; all when ``limit`` is None)."""
    questions = []
    for row in _rows(path, ("id", "question", "answer", "evidence", "passages")):
        questions.append(Question(**{**row, "passages": tuple(row["passages"])}))
    return questions if limit is None else questions[:limit]


def _rows(path: Path, keys: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        msg = f"corpus file {str(path)!r} is missing; rebuild it with examples/corpus/build_corpus.py"
        raise FileNotFoundError(msg)
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [k for k in keys if k not in row]
            if missing:
                msg = f"{path}:{number}: missing key(s) {', '.join(missing)}; each line needs {', '.join(keys)}"
                raise ValueError(msg)
            yield {k: row[k] for k in keys}
