"""Policy: from model scores to a decision and to who must read it.

- ``compose`` follows the 判断フローチャート's order: P(射程外) from the text model; then P(解決済) is the
  grounded coverage (the window's documents settle it), never a text-only guess; the rest of the
  probability is shared by the other five categories as the text model says.
- ``ConformalPolicy`` routes with class-conditional (Mondrian) conformal prediction (crepes) calibrated
  on writer-grouped out-of-fold scores: an opinion is decided automatically only when its prediction
  set is a single category. With significance 0.02 for 共有すべきもの, a true 共有すべきもの opinion leaves
  the set — and can be auto-excluded — with probability at most 2 %, *if* the opinions of a window are
  exchangeable with the calibration opinions (docs/decisions/0005-conformal-review.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SHARE = "SHARE"
RESOLVED = "RESOLVED"
OUT_OF_SCOPE = "OUT_OF_SCOPE"


def compose(p_text: np.ndarray, text_classes: Sequence[str], coverage: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """Probabilities over ``classes`` (all seven) from the text model's (which has no 解決済) and the
    grounded coverage, in the flowchart's order: 射程外 first, then 解決済, then the others."""
    text_classes, classes = list(text_classes), list(classes)
    p_text = np.asarray(p_text, dtype=np.float64)
    c = np.clip(np.asarray(coverage, dtype=np.float64), 0.0, 1.0)
    oos = p_text[:, text_classes.index(OUT_OF_SCOPE)] if OUT_OF_SCOPE in text_classes else np.zeros(len(p_text))
    out = np.zeros((len(p_text), len(classes)))
    rest = [k for k in text_classes if k != OUT_OF_SCOPE]
    rest_sum = p_text[:, [text_classes.index(k) for k in rest]].sum(axis=1)
    rest_sum = np.where(rest_sum <= 0, 1.0, rest_sum)
    for j, k in enumerate(classes):
        if k == OUT_OF_SCOPE:
            out[:, j] = oos
        elif k == RESOLVED:
            out[:, j] = (1 - oos) * c
        elif k in rest:
            out[:, j] = (1 - oos) * (1 - c) * p_text[:, text_classes.index(k)] / rest_sum
    return out / out.sum(axis=1, keepdims=True)


def platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) of p = sigmoid(a·logit(s) + b), fitted by maximum likelihood (one feature, tiny L2)."""
    from sklearn.linear_model import LogisticRegression

    z = _logit(scores).reshape(-1, 1)
    if len(set(y.tolist())) < 2:
        return 1.0, 0.0
    lr = LogisticRegression(C=100.0).fit(z, y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def apply_platt(scores: np.ndarray, ab: tuple[float, float]) -> np.ndarray:
    a, b = ab
    return 1 / (1 + np.exp(-(a * _logit(scores) + b)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


@dataclass
class ConformalPolicy:
    """Class-conditional conformal sets over the seven categories, plus the candidate threshold."""

    classes: tuple[str, ...]
    cal_alphas: np.ndarray  # non-conformity (1 − p of the true class) of the calibration opinions
    cal_labels: np.ndarray  # their true class index
    epsilons: dict[str, float]  # significance per class (SHARE: the guarantee)
    candidate_threshold: float = 0.5
    min_coverage: float = 0.5  # 解決済 is automatic only with a passage at least this likely to settle it
    min_relevance: float = 0.0  # below this the opinion is unlike anything the references and corpus concern
    min_typical: float = 0.0  # below this it is unlike the calibration opinions: outside what the guarantee covers
    report: dict = field(default_factory=dict)
    # below this pair logit the chosen candidate hardly fits on its own: the list may lack the opinion's system
    min_candidate_fit: float = float("-inf")

    def p_values(self, proba: np.ndarray) -> np.ndarray:
        from crepes import ConformalClassifier

        cc = ConformalClassifier()
        cc.fit(self.cal_alphas, bins=self.cal_labels)
        alphas = 1 - np.asarray(proba, dtype=np.float64)
        n = len(alphas)
        if n == 0:
            return np.zeros((0, len(self.classes)))
        cols = []
        for c in range(len(self.classes)):
            if (self.cal_labels == c).any():
                cols.append(cc.predict_p(alphas, np.full(n, c), smoothing=False)[:, c])
            else:
                cols.append(np.ones(n))
        return np.array(cols).T

    def sets(self, proba: np.ndarray) -> np.ndarray:
        """Boolean matrix opinions × classes: is the class in the opinion's prediction set."""
        pv = self.p_values(proba)
        eps = np.array([self.epsilons.get(c, self.epsilons.get("*", 0.1)) for c in self.classes])
        return pv > eps[None, :]

    def to_dict(self) -> dict:
        return {
            "classes": list(self.classes), "epsilons": self.epsilons, "candidate_threshold": self.candidate_threshold,
            "min_coverage": self.min_coverage, "min_relevance": self.min_relevance, "min_typical": self.min_typical, "min_candidate_fit": self.min_candidate_fit, "report": self.report,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict, cal_alphas: np.ndarray, cal_labels: np.ndarray) -> "ConformalPolicy":
        return cls(
            classes=tuple(d["classes"]), cal_alphas=np.asarray(cal_alphas), cal_labels=np.asarray(cal_labels).astype(int), epsilons=dict(d["epsilons"]),
            candidate_threshold=float(d["candidate_threshold"]), min_coverage=float(d["min_coverage"]), min_relevance=float(d["min_relevance"]),
            min_typical=float(d.get("min_typical", 0.0)), report=d.get("report", {}), min_candidate_fit=float(d.get("min_candidate_fit", float("-inf"))),
        )  # fmt: skip


# a candidate the mapping gives less than even odds goes to a person whatever the out-of-fold search chose:
# there the true system was always on the list, while a window's list may lack it (issue 13: the top two
# close together go to review)
CANDIDATE_FLOOR = 0.5
# review reason codes (structured; rendered in Japanese by explain.REVIEW_LABELS)
REVIEW_CODES = ("ingest", "ambiguous", "no_fit", "outside_set", "share_possible", "resolved_unsupported", "candidate_low", "candidate_unlisted", "off_domain", "atypical", "window_unrelated")
# a window most of whose opinions are unlike the calibration opinions is not the domain the model was
# calibrated on (comments of another consultation): every row goes to a person. Out of fold, a training
# window has 2–13 % of its opinions below min_typical; half is far from that and needs no tuning. Below
# WINDOW_MIN_ROWS distinct opinions a share says little: each row is judged alone.
WINDOW_UNRELATED_SHARE = 0.5
WINDOW_MIN_ROWS = 30


def window_unrelated(relevance: np.ndarray, policy: ConformalPolicy) -> bool:
    """Are most of a window's distinct opinions atypical (``relevance`` below ``policy.min_typical``)?"""
    r = np.asarray(relevance, dtype=np.float64)
    return len(r) >= WINDOW_MIN_ROWS and float(np.mean(r < policy.min_typical)) > WINDOW_UNRELATED_SHARE


def review_codes(
    pred: np.ndarray, in_set: np.ndarray, classes: Sequence[str], coverage: np.ndarray, cand_conf: np.ndarray, relevance: np.ndarray, policy: ConformalPolicy, ingest_flagged: np.ndarray,
    cand_fit: np.ndarray | None = None, any_fit: np.ndarray | None = None,
) -> list[list[str]]:
    """Why each opinion goes to a person ([] = decided automatically).

    ``cand_fit``: the mapping's pair logit of the chosen candidate (+inf for 全般); ``any_fit``: the best
    pair logit of the list, 全般 included. Below ``policy.min_candidate_fit`` the chosen candidate hardly
    fits on its own (「一覧にない制度」); when nothing on the list fits and the opinion is also unlike the
    calibration opinions, it is off the domain."""
    classes = list(classes)
    n = len(pred)
    cand_fit = np.full(n, np.inf) if cand_fit is None else cand_fit
    any_fit = np.full(n, np.inf) if any_fit is None else any_fit
    s, r = classes.index(SHARE), classes.index(RESOLVED)
    out = []
    for i in range(n):
        codes = []
        if ingest_flagged[i]:
            codes.append("ingest")
        size = int(in_set[i].sum())
        if size == 0:
            codes.append("no_fit")
        elif size > 1:
            codes.append("ambiguous")
        if size and not in_set[i, pred[i]]:  # the set accepts another category than the most probable one
            codes.append("outside_set")
        if pred[i] != s and in_set[i, s]:
            codes.append("share_possible")
        if pred[i] == r and coverage[i] < policy.min_coverage:
            codes.append("resolved_unsupported")
        if cand_conf[i] < max(policy.candidate_threshold, CANDIDATE_FLOOR):
            codes.append("candidate_low")
        if cand_fit[i] < policy.min_candidate_fit:
            codes.append("candidate_unlisted")
        if relevance[i] < policy.min_relevance or (relevance[i] < policy.min_typical and any_fit[i] < policy.min_candidate_fit):
            codes.append("off_domain")
        elif relevance[i] < policy.min_typical:
            codes.append("atypical")
        out.append(codes)
    return out


def choose_epsilons(proba: np.ndarray, y: np.ndarray, classes: Sequence[str], cand_ok: np.ndarray, cand_conf: np.ndarray, targets: dict, share_epsilon: float = 0.02) -> tuple[dict, float, dict]:
    """Significance for the non-SHARE classes and the candidate threshold: the smallest review rate with
    auto-decided category accuracy ≥ target and candidate accuracy ≥ target, on out-of-fold scores
    (SHARE's significance is the stated guarantee and is not searched)."""
    classes = list(classes)
    s = classes.index(SHARE)
    pred = proba.argmax(1)
    tmp = ConformalPolicy(tuple(classes), 1 - proba[np.arange(len(y)), y], y, {SHARE: share_epsilon, "*": 0.1})
    pv = tmp.p_values(proba)
    best = None
    for eps in (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3):
        e = np.array([share_epsilon if c == SHARE else eps for c in classes])
        in_set = pv > e[None, :]
        single = in_set.sum(1) == 1
        for tk in np.round(np.arange(CANDIDATE_FLOOR, 1.0, 0.05), 2):
            auto = single & (in_set[np.arange(len(y)), pred]) & (cand_conf >= tk)
            if not auto.any():
                continue
            acc = (pred[auto] == y[auto]).mean()
            cacc = cand_ok[auto].mean()
            lost = ((y == s) & (pred != s) & auto).sum() / max((y == s).sum(), 1)
            if acc >= targets["auto_accuracy"] and cacc >= targets["candidate_accuracy"] and lost <= targets["share_loss"]:
                key = (1 - auto.mean(), -eps, tk)
                if best is None or key < best[0]:
                    best = (key, eps, float(tk), {"review_rate": float(1 - auto.mean()), "auto_accuracy": float(acc), "auto_candidate_accuracy": float(cacc), "share_lost": float(lost)})
    if best is None:
        return {SHARE: share_epsilon, "*": 0.01}, 1.0, {"unreachable": True}
    return {SHARE: share_epsilon, "*": best[1]}, best[2], best[3]
