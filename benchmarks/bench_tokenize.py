"""fugashi+unidic-lite vs the full GiNZA pipeline (ja_ginza) on real public comments: texts/s.

    python benchmarks/bench_tokenize.py [N]      # N real comments (default 300)
"""

from __future__ import annotations

import statistics
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from bench_batch import corpus_texts  # noqa: E402

from pipeline.tokenize import FugashiTokenizer, GinzaAnalyzer  # noqa: E402


def rate(fn, texts, repeats: int = 3) -> float:
    fn(texts[0])  # load the model outside the timing
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in texts:
            fn(t)
        runs.append(len(texts) / (time.perf_counter() - t0))
    return statistics.median(runs)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    texts = corpus_texts()[:n]
    print(f"{n} real comments, median {statistics.median(len(t) for t in texts):.0f} characters; median of 3 runs")
    print(f"fugashi+unidic-lite lemmas : {rate(FugashiTokenizer().lemmas, texts):8.1f} texts/s")
    print(f"GiNZA full pipeline (parse): {rate(GinzaAnalyzer().analyse, texts[: max(20, n // 10)], repeats=1):8.1f} texts/s")


if __name__ == "__main__":
    main()
