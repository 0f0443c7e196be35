"""The dedupe stage alone (``group_duplicates`` on normalised rows) on the 2,622 real comments in
../shared/data and on synthetic windows with planted near-copies, with pair precision/recall.

Synthetic window of N rows: 96 % are copies of 8,000 source texts (each source is 2–8 real sentences
of the corpus; family sizes skewed, ∝ rank^-0.6, so a few templates are re-sent by ~1,000 bodies and
fill LSH buckets far above 64), each copy with the edits bodies make: its own body name
(「〇〇市としては」, masked by the body column), punctuation and 全角/半角, and in 30 % a real sentence
added (shorter than a third of the text, so the copy is still a duplicate by containment). The other
4 % are distinct texts recombined from real sentences. Each size runs in its own process so that peak
RSS is its own; frames are normalised once and cached.

    .venv/bin/python benchmarks/bench_dedupe.py                                  # real, 100k, 200k
    .venv/bin/python benchmarks/bench_dedupe.py --impl /tmp/old/dedupe.py        # another dedupe.py
    .venv/bin/python benchmarks/bench_dedupe.py --sizes real,100000

Prints one JSON line per size: wall and CPU seconds of ``group_duplicates`` (CPU time is the steadier
figure on a shared machine), peak RSS during the call (VmHWM, reset just before it; the loaded frame
included) and RSS before it, candidate pairs (LSH, identical keys excluded),
verified pairs, groups, and the pair precision/recall of the groups against the planted families.
Not a test: figures, not assertions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import corpus_texts  # noqa: E402

SOURCES = 8_000
COPY_SHARE = 0.96
PREFECTURES = ["北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県", "埼玉県", "千葉県", "東京都", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県", "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県"]
NAME_CHARS = "東西南北上下大小山川田野原本中高新松竹梅桜若宮津浦島岡沢峰森林泉浜岩"
OPENINGS = ["{name}としては、", "{name}では、", "本件について{name}の意見を述べる。", ""]
FULLWIDTH = str.maketrans({chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)})


# --------------------------------------------------------------------------- synthetic window


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


def synthetic_window(n: int, seed: int = 0) -> pd.DataFrame:
    """Rows with text, body and ``family`` (the planted source; distinct texts are families of one)."""
    rng = np.random.default_rng(seed)
    pool = sentences_of(corpus_texts())
    by_length = np.argsort([len(s) for s in pool], kind="stable")
    sorted_lengths = np.sort([len(s) for s in pool], kind="stable")
    templates = [compose(rng, pool) for _ in range(SOURCES)]
    n_copies = int(round(n * COPY_SHARE))
    weights = 1.0 / np.arange(1, SOURCES + 1) ** 0.6
    family = rng.choice(SOURCES, size=n_copies, p=weights / weights.sum())
    who = bodies(rng, n)
    texts, fam = [], []
    for k, f in enumerate(family):
        fits = by_length[: np.searchsorted(sorted_lengths, len(templates[f]) // 3)]
        texts.append(edit(rng, templates[f], pool, fits, who[k][1]))
        fam.append(int(f))
    for k in range(n_copies, n):
        texts.append(compose(rng, pool).replace("{name}", who[k][1]))
        fam.append(SOURCES + k)
    perm = rng.permutation(n)  # copies of one source are spread over the window, as files arrive
    return pd.DataFrame({"opinion_id": [f"s{i}" for i in range(n)], "text": [texts[i] for i in perm], "reason": "", "body": [who[i][0] for i in perm], "family": [fam[i] for i in perm]})


def real_window() -> pd.DataFrame:
    texts = corpus_texts()
    return pd.DataFrame({"opinion_id": [f"r{i}" for i in range(len(texts))], "text": texts, "reason": "", "body": "", "family": -1})


def prepared(size: str, cache: Path) -> Path:
    """The normalised frame of one size, cached as parquet (normalising 200k rows takes minutes)."""
    path = cache / f"dedupe-{size}.parquet"
    if not path.exists():
        from pipeline.normalize import normalise

        raw = real_window() if size == "real" else synthetic_window(int(size))
        normalise(raw)[["opinion_id", "body", "dedupe_key", "family"]].to_parquet(path)
    return path


# --------------------------------------------------------------------------- measurement


def pair_scores(pred: pd.Series, truth: pd.Series) -> tuple[float, float]:
    """Pair precision/recall of a grouping against planted families (pairs implied by co-membership)."""
    pairs = lambda c: float((c * (c - 1) // 2).sum())  # noqa: E731
    both = pairs(pd.DataFrame({"p": pred.to_numpy(), "t": truth.to_numpy()}).value_counts().to_numpy())
    return both / max(pairs(pred.value_counts().to_numpy()), 1.0), both / max(pairs(truth.value_counts().to_numpy()), 1.0)


def load_impl(path: str | None):
    if not path:
        import pipeline.dedupe as mod

        return mod
    spec = importlib.util.spec_from_file_location("dedupe_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def counted(mod, name: str, tally: dict, rows=len) -> None:
    """Wrap ``mod.name`` (if the module has it) so the number of rows it returns is recorded; the module
    calls it by name, so the wrapper sees every call."""
    fn = getattr(mod, name, None)
    if fn is None:
        return

    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        tally[name] = tally.get(name, 0) + rows(out)
        return out

    setattr(mod, name, wrapper)


def memory_mb(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (ru_maxrss would carry the parent's size over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> None:
    """Restart VmHWM from the current RSS (Linux ≥ 4.0), so the peak is that of the measured call."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def one(size: str, impl: str | None, cache: Path) -> dict:
    from pipeline.config import load_params

    cfg = load_params().dedupe
    df = pd.read_parquet(prepared(size, cache))
    mod = load_impl(impl)
    tally: dict = {}
    counted(mod, "lsh_candidates", tally)
    if hasattr(mod, "_verified"):  # group_duplicates calls _verified (similar_pairs' body) directly
        counted(mod, "_verified", tally, rows=lambda out: len(out[0]))
    else:
        counted(mod, "similar_pairs", tally)
    rss0 = memory_mb("VmRSS")
    reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    g = mod.group_duplicates(df, cfg)
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "size": size, "impl": impl or "pipeline/dedupe.py", "rows": len(df), "distinct_keys": int(df.loc[df["dedupe_key"] != "", "dedupe_key"].nunique()),
        "seconds": round(secs, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mb": round(memory_mb("VmHWM"), 1), "rss_before_mb": round(rss0, 1),
        "candidate_pairs": tally.get("lsh_candidates", 0), "verified_pairs": tally.get("_verified", tally.get("similar_pairs", 0)),
        "groups": int(g["dup_group"].nunique()), "largest_group": int(g["dup_count"].max()), "rows_in_groups": int((g["dup_count"] > 1).sum()),
    }
    if size != "real":
        p, r = pair_scores(g["dup_group"], df["family"])
        out.update({"pair_precision": round(p, 4), "pair_recall": round(r, 4), "planted_families": int(df["family"].nunique())})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", help="path of a dedupe.py to measure instead of pipeline/dedupe.py")
    ap.add_argument("--sizes", default="real,100000,200000")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "bench_dedupe_cache"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    cache = Path(a.cache)
    cache.mkdir(parents=True, exist_ok=True)
    if a.one:
        print(json.dumps(one(a.one, a.impl, cache), ensure_ascii=False))
        return
    for size in a.sizes.split(","):
        prepared(size, cache)
        cmd = [sys.executable, __file__, "--one", size, "--cache", str(cache)] + (["--impl", a.impl] if a.impl else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        print(proc.stdout.strip() if proc.returncode == 0 else proc.stderr[-2000:], flush=True)


if __name__ == "__main__":
    main()
