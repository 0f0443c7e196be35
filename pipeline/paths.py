"""Every default path of the project, derived from the project root in one place."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIGS = PROJECT_ROOT / "configs"
PARAMS = PROJECT_ROOT / "params.yaml"
DATA = PROJECT_ROOT / "data"
RAW = DATA / "raw"
LABELED = DATA / "labeled"
LABELED_CSV = LABELED / "opinions.csv"
MODELS = PROJECT_ROOT / "models"
DEFAULT_MODEL_DIR = MODELS / "default"
OUTPUTS = PROJECT_ROOT / "outputs"
METRICS = PROJECT_ROOT / "metrics"
MLRUNS_DB = PROJECT_ROOT / "mlflow.db"
REVIEW_DB = PROJECT_ROOT / "review.db"
HARVESTED = LABELED / "harvested"
LABELED_WINDOWS = LABELED / "windows"  # whole windows with lists of their own, trained on (data/labeled/windows/<window>.csv)
LABELED_REFERENCES = LABELED / "references"


def window_output_dir(window: str, outputs: Path = OUTPUTS) -> Path:
    return outputs / window
