"""Windows for the scale benchmarks of issue 11, built from the 2,622 real comments in ../shared/data
(deterministic: the same size and seed give the same rows), with the planted copies known.

(b) ``campaign``: 200,000 rows, 96 % exact or near-exact copies of 8,000 source texts (each source is
    2–8 real sentences of the corpus; family sizes skewed ∝ rank^-0.6, so a few templates are re-sent by
    ~1,000 bodies), each copy with the edits bodies make — its own name (「〇〇市としては」), punctuation,
    全角/半角, in 30 % a real sentence added — and 4 % distinct texts recombined from real sentences.
    The same rows as ``bench_dedupe.synthetic_window`` (one generator for both).
(c) ``mixed``: 100,000 rows, 40 % near-copies of 4,000 sources with milder skew (∝ rank^-0.3: families
    of a few to a few dozen), 60 % distinct: many distinct texts to classify, many small groups.

Written as a window's raw folder (``comments.csv`` with 番号・団体名・都道府県・意見, UTF-8 with BOM, as
bodies send it) and, beside the folder (never inside: ingest reads every file there), the planted
families per 番号 (``<window>.truth.csv``). Written to /tmp (or --out), never to the repository.

    .venv/bin/python benchmarks/campaign.py campaign [--rows 200000] [--out /tmp/opinions-bench]
    .venv/bin/python benchmarks/campaign.py mixed
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import corpus_texts  # noqa: E402

PREFECTURES = ["北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県"]
NAME_CHARS = "東西南北上下大小山川田野原本中高新松竹梅桜若宮津浦島岡沢峰森林泉浜岩"
OPENINGS = ["{name}としては、", "{name}では、", "本件について{name}の意見を述べる。", ""]
FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})
DEFAULT_OUT = Path(tempfile.gettempdir()) / "opinions-bench"


@dataclass(frozen=True)
class Shape:
    """How a window is planted: ``sources`` texts, ``copy_share`` of the rows are copies of them with
    family sizes ∝ rank^-``skew``; the other rows are distinct."""

    rows: int
    sources: int
    copy_share: float
    skew: float
    seed: int


SHAPES = {"campaign": Shape(200_000, 8_000, 0.96, 0.6, 0), "mixed": Shape(100_000, 4_000, 0.40, 0.3, 1)}


def sentences_of(texts: list[str]) -> list[str]:
    return [s for t in texts for s in re.split(r"(?<=[。！？])", t) if len(s) > 5]


def bodies(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """(full body name, the name a body uses in its text): 「青森県東山市」, 「東山市」."""
    out = []
    for _ in range(n):
        city = "".join(rng.choice(list(NAME_CHARS), 2)) + str(rng.choice(["市", "町", "村"]))
        out.append((str(rng.choice(PREFECTURES)) + city, city))
    return out


def compose(rng: np.random.Generator, pool: list[str]) -> str:
    opening = str(rng.choice(OPENINGS))
    return opening + "".join(pool[i] for i in rng.integers(0, len(pool), size=int(rng.integers(2, 9))))


def edit(rng: np.random.Generator, template: str, pool: list[str], fits: np.ndarray, name: str) -> str:
    """A body's re-sent copy: its own name, punctuation/width changes, sometimes a sentence added
    (one of ``fits``, the pool's sentences shorter than a third of the template)."""
    text = template.replace("{name}", name)
    if rng.random() < 0.5:
        text = text.replace("、", "，" if rng.random() < 0.5 else "")
    if rng.random() < 0.3:
        text = text.replace("。", "．")
    if rng.random() < 0.3:
        text = text.translate(FULLWIDTH)
    if rng.random() < 0.3 and len(fits):
        cut = [m.end() for m in re.finditer(r"[。．]", text)] or [len(text)]
        at = int(rng.choice(cut))
        text = text[:at] + pool[int(rng.choice(fits))] + text[at:]
    return text


def planted_window(shape: Shape, texts: list[str] | None = None) -> pd.DataFrame:
    """Rows with opinion_id, text, body, prefecture and ``family`` (the planted source; a distinct text
    is a family of one), in a shuffled order (copies of one source spread over the window)."""
    n = shape.rows
    rng = np.random.default_rng(shape.seed)
    pool = sentences_of(texts if texts is not None else corpus_texts())
    by_length = np.argsort([len(s) for s in pool], kind="stable")
    sorted_lengths = np.sort([len(s) for s in pool], kind="stable")
    templates = [compose(rng, pool) for _ in range(shape.sources)]
    n_copies = int(round(n * shape.copy_share))
    weights = 1.0 / np.arange(1, shape.sources + 1) ** shape.skew
    family = rng.choice(shape.sources, size=n_copies, p=weights / weights.sum())
    who = bodies(rng, n)
    out, fam = [], []
    for k, f in enumerate(family):
        fits = by_length[: np.searchsorted(sorted_lengths, len(templates[f]) // 3)]
        out.append(edit(rng, templates[f], pool, fits, who[k][1]))
        fam.append(int(f))
    for k in range(n_copies, n):
        out.append(compose(rng, pool).replace("{name}", who[k][1]))
        fam.append(shape.sources + k)
    perm = rng.permutation(n)
    return pd.DataFrame(
        {
            "opinion_id": [f"s{i}" for i in range(n)],
            "text": [out[i] for i in perm],
            "reason": "",
            "body": [who[i][0] for i in perm],
            "prefecture": [next(p for p in PREFECTURES if who[i][0].startswith(p)) for i in perm],
            "family": [fam[i] for i in perm],
        }
    )


def window_shape(kind: str, rows: int | None = None) -> Shape:
    base = SHAPES[kind]
    return base if rows is None else Shape(rows, base.sources, base.copy_share, base.skew, base.seed)


def write_window(frame: pd.DataFrame, out: Path, window: str) -> tuple[Path, Path]:
    """``out/<window>/comments.csv`` (the raw file, 番号 = row number) and ``out/<window>.truth.csv``
    (番号, family). Returns (raw folder, truth file)."""
    raw = out / window
    raw.mkdir(parents=True, exist_ok=True)
    ids = range(1, len(frame) + 1)
    pd.DataFrame({"番号": ids, "団体名": frame["body"], "都道府県": frame["prefecture"], "意見": frame["text"]}).to_csv(raw / "comments.csv", index=False, encoding="utf-8-sig")
    truth = out / f"{window}.truth.csv"
    pd.DataFrame({"opinion_id": [str(i) for i in ids], "family": frame["family"].to_numpy()}).to_csv(truth, index=False)
    return raw, truth


def ensure_window(kind: str, rows: int | None = None, out: Path = DEFAULT_OUT) -> tuple[Path, Path]:
    """The raw folder and truth file of a window, generated once (same shape → same files)."""
    shape = window_shape(kind, rows)
    window = f"BENCH-{kind}-{shape.rows}"
    raw, truth = out / window, out / f"{window}.truth.csv"
    if not (raw / "comments.csv").exists() or not truth.exists():
        write_window(planted_window(shape), out, window)
    return raw, truth


def pair_scores(pred: pd.Series, truth: pd.Series) -> tuple[float, float]:
    """Pair precision/recall of a grouping against planted families (pairs implied by co-membership)."""
    pairs = lambda c: float((c * (c - 1) // 2).sum())  # noqa: E731
    both = pairs(pd.DataFrame({"p": pred.to_numpy(), "t": truth.to_numpy()}).value_counts().to_numpy())
    return both / max(pairs(pred.value_counts().to_numpy()), 1.0), both / max(pairs(truth.value_counts().to_numpy()), 1.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=sorted(SHAPES))
    ap.add_argument("--rows", type=int)
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    a = ap.parse_args()
    raw, truth = ensure_window(a.kind, a.rows, Path(a.out))
    t = pd.read_csv(truth)
    print(f"{raw}: {len(t):,} 行、植えた家族 {t['family'].nunique():,}（2 行以上 {(t['family'].value_counts() > 1).sum():,}、最大 {t['family'].value_counts().max():,} 行）→ 正解 {truth}")


if __name__ == "__main__":
    main()
