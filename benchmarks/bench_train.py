"""Time `fit_opinion_model` (5-fold writer-grouped CV + final fit) on the labelled train split, per feature set.

    python benchmarks/bench_train.py
"""

from __future__ import annotations

import time
from dataclasses import replace

from pipeline.config import load_domain, load_params
from pipeline.labeled import load_labeled, split
from pipeline.train import fit_opinion_model


def main() -> None:
    domain, params = load_domain(), load_params()
    train = split(load_labeled(domain=domain), "train")
    for feats in [("char",), ("char", "word", "cues"), tuple(params.classify.features)]:
        t0 = time.perf_counter()
        fit_opinion_model(train, domain, replace(params.classify, features=feats))
        print(f"{'+'.join(feats):24s} {len(train)} rows: {time.perf_counter() - t0:6.1f} s (embeddings of a cold process included)")


if __name__ == "__main__":
    main()
