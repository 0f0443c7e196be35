"""The ``opinions`` command: thin edges around the pure stages (read files, call the core, write files,
log to MLflow). Every message a user reads is in Japanese."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import typer

from pipeline import paths

REGISTERED_MODEL = "opinions-classifier"


# --------------------------------------------------------------------------- Typer/Click's own words in Japanese
# Usage errors (a missing option, a misspelt command, a value that is not a number), the help's panel
# titles, "Usage:" and the --help option are Typer's English; the classes below say them in Japanese.
# Pure translation of the exception (``usage_message``) and the help strings; nothing else changes.

HELP_OPTION_TEXT = "この説明を表示して終了する。"
RICH_TEXTS = {  # typer.rich_utils' module-level strings, read when help or an error is printed
    "ARGUMENTS_PANEL_TITLE": "引数",
    "OPTIONS_PANEL_TITLE": "オプション",
    "COMMANDS_PANEL_TITLE": "コマンド",
    "ERRORS_PANEL_TITLE": "エラー",
    "REQUIRED_LONG_STRING": "［必須］",
    "DEFAULT_STRING": "［既定: {}］",
    "ENVVAR_STRING": "［環境変数: {}］",
    "DEPRECATED_STRING": "（廃止予定）",
    "ABORTED_TEXT": "中止しました。",
    "RICH_HELP": "使い方は [blue]'{command_path} {help_option}'[/] で表示できます。",
}
WINDOW_HELP = "照会回の ID（`opinions run` のときのフォルダ名。例: R7-sample）"
DB_HELP = "確認キューのデータベース URL（既定: configs/queue.yaml、なければ review.db）"
_TYPE_LABELS = {"<str>": "<文字>", "<int>": "<整数>", "<float>": "<数値>", "<path>": "<パス>", "<bool>": ""}  # a flag needs no type
_TYPE_WORDS = {"int": "整数", "float": "数値", "bool": "はい／いいえ", "Path": "ファイルまたはフォルダのパス"}


def _hint(e) -> str:
    """The option or argument an error is about, as typed (--row / 受信フォルダ)."""
    param = getattr(e, "param", None)
    if getattr(e, "param_hint", None):
        hint = e.param_hint if isinstance(e.param_hint, str) else " / ".join(e.param_hint)
    elif param is not None:
        named = getattr(param, "display_name_raw", None) or param.human_readable_name  # an argument's metavar
        hint = " / ".join(param.opts if getattr(param, "param_type_name", "") == "option" else [named])
    else:
        hint = ""
    return hint.replace("'", "")


def usage_message(e) -> str:
    """A Click/Typer usage error in Japanese (the English text is kept only for a message not known here)."""
    import re

    from typer._click import exceptions as ce

    msg = str(getattr(e, "message", "") or "")
    if isinstance(e, ce.MissingParameter):
        param = e.param
        what = "引数" if getattr(param, "param_type_name", "") == "argument" else "オプション"
        help_text = getattr(param, "help", None)
        return f"{what} {_hint(e)} の指定が必要です" + (f"（{help_text}）" if help_text else "") + "。"
    if isinstance(e, ce.NoSuchOption):
        near = "、".join(sorted(e.possibilities or ()))
        return f"オプション {e.option_name} はありません。" + (f"もしかして: {near}" if near else "`--help` で使えるオプションを確かめてください。")
    if isinstance(e, ce.BadParameter):
        param = e.param
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        word = _TYPE_WORDS.get(getattr(annotation, "__name__", ""), "")
        if word and re.search(r"valid|parse|Input should be", msg):
            return f"{_hint(e)} には{word}を指定してください。"
        return f"{_hint(e)} の値が正しくありません（{msg}）。"
    m = re.fullmatch(r"Option '?(\S+?)'? requires (an argument|(\d+) arguments)\.", msg)
    if m:
        return f"オプション {m[1]} の後に値を指定してください" + (f"（{m[3]} 個）" if m[3] else "") + "。空白を含む値は \"…\" で囲みます。"
    m = re.fullmatch(r"Option '?(\S+?)'? does not take a value\.", msg)
    if m:
        return f"オプション {m[1]} は値を取りません（付けるだけで有効になります）。"
    m = re.fullmatch(r"No such command '(.+?)'\.(?: Did you mean (.+)\?)?", msg)
    if m:
        near = "、".join(x.strip("'") for x in (m[2] or "").split(", ") if x)
        return f"コマンド「{m[1]}」はありません。" + (f"もしかして: {near}" if near else "`--help` で使えるコマンドを確かめてください。")
    m = re.fullmatch(r"Got unexpected extra argument\(s\) \((.*)\)", msg)
    if m:
        return f"余分な引数があります: {m[1]}。空白を含む値は \"…\" で囲み、オプションは --名前 の形で指定してください。"
    if msg == "Missing command.":
        return "コマンドを指定してください。"
    return msg


class _Japanese:
    """Mixin for Typer's command and group classes: Japanese usage line, --help text and usage errors."""

    def __init__(self, *args, **kwargs):
        if kwargs.get("options_metavar") == "[OPTIONS]":
            kwargs["options_metavar"] = "[オプション]"
        super().__init__(*args, **kwargs)

    def format_usage(self, ctx, formatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(self.collect_usage_pieces(ctx)), prefix="使い方: ")

    def format_help(self, ctx, formatter) -> None:
        for param in self.get_params(ctx):
            _japanese_type(param)
        return super().format_help(ctx, formatter)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.help = HELP_OPTION_TEXT
        return option

    def make_context(self, info_name, args, parent=None, **extra):
        from typer._click import exceptions as ce

        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except ce.NoArgsIsHelpError:
            raise
        except ce.UsageError as e:
            raise _translated(e) from None


def _japanese_type(param) -> None:
    """The type shown beside an option in --help (<str> → <文字>), on this parameter object only."""
    if "display_type" in vars(param):
        return
    english = param.display_type
    param.display_type = lambda ctx: _TYPE_LABELS.get(english(ctx), english(ctx))


def _translated(e):
    from typer._click import exceptions as ce

    if getattr(e, "japanese", False):
        return e
    out = ce.UsageError(usage_message(e), ctx=getattr(e, "ctx", None))
    out.japanese = True
    out.exit_code = e.exit_code
    return out


class JapaneseCommand(_Japanese, typer.core.TyperCommand):
    pass


class JapaneseGroup(_Japanese, typer.core.TyperGroup):
    def __init__(self, *args, **kwargs):
        kwargs["subcommand_metavar"] = kwargs.get("subcommand_metavar") or "コマンド [引数]..."
        super().__init__(*args, **kwargs)

    def resolve_command(self, ctx, args):
        from typer._click import exceptions as ce

        try:
            return super().resolve_command(ctx, args)
        except ce.UsageError as e:
            raise _translated(e) from None

    def main(self, *args, **kwargs):
        from typer import rich_utils

        for name, text in RICH_TEXTS.items():
            setattr(rich_utils, name, text)  # when a command starts, never at import
        return super().main(*args, **kwargs)


class JapaneseTyper(typer.Typer):
    """typer.Typer whose groups and commands speak Japanese (JapaneseGroup, JapaneseCommand)."""

    def __init__(self, **kwargs):
        super().__init__(cls=JapaneseGroup, **kwargs)

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or JapaneseCommand, **kwargs)


app = JapaneseTyper(no_args_is_help=True, add_completion=False, help="自治体意見の分類バッチ（国・地方デジタル共通基盤 共通化候補）")


def _setup_env() -> None:
    """Offline and local-only settings, applied when a command starts (never at import)."""
    from pipeline.embed import offline_env

    offline_env()
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{paths.MLRUNS_DB}")


def _err(msg: str, code: int = 2) -> None:
    typer.secho(msg, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.PROJECT_ROOT, capture_output=True, text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# --------------------------------------------------------------------------- MLflow (edge only)


def _mlflow_run(name: str):
    import mlflow

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    exp = mlflow.get_experiment_by_name("opinions")
    if exp is None:
        mlflow.create_experiment("opinions", artifact_location=(paths.PROJECT_ROOT / "mlartifacts").as_uri())
    mlflow.set_experiment("opinions")
    return mlflow, mlflow.start_run(run_name=name)


def _flat(prefix: str, d: dict) -> dict[str, float]:
    """Numbers of a nested report as MLflow metrics (names only of the characters MLflow accepts)."""
    import re

    out = {}
    for k, v in d.items():
        name = re.sub(r"[^0-9A-Za-z_\-. :/]", "_", f"{prefix}{k}")
        if isinstance(v, dict):
            out.update(_flat(f"{name}.", v))
        elif isinstance(v, (int, float)) and v == v:
            out[name] = float(v)
    return out


# --------------------------------------------------------------------------- train / evaluate


def train_default_model(model_dir: Path, labeled: Path, log_mlflow: bool = True, quiet: bool = False):
    """Train on the train split of the labelled corpus, save to ``model_dir``, log and register in MLflow."""
    from dataclasses import asdict, replace

    from pipeline.classify import save_model
    from pipeline.config import load_domain, load_params
    from pipeline.labeled import LabeledDataError, load_corpus_references, load_training_corpus, split
    from pipeline.train import fit_opinion_model

    domain, params = load_domain(), load_params()
    refs = load_corpus_references()
    data = load_training_corpus(labeled, domain=domain, lists=refs.candidates)
    train_rows = split(data, "train")
    refs = replace(refs, candidates={**(refs.candidates or {}), **data.attrs.get("candidate_lists", {})})
    if refs.problems:
        raise LabeledDataError("参考文書のラベルに問題があります（引用が段落に見つからない）:\n" + "\n".join(refs.problems[:20]))
    t0 = time.perf_counter()
    model, report = fit_opinion_model(train_rows, domain, params.classify, refs)
    model.meta.update({"git_sha": _git_sha(), "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "train_seconds": round(time.perf_counter() - t0, 1), "labeled_path": str(labeled)})
    save_model(model, model_dir)
    if not quiet:
        typer.echo(f"学習完了: {len(train_rows)} 件、{model.meta['train_seconds']} 秒 → {model_dir}")
        typer.echo(json.dumps(report, ensure_ascii=False, indent=1))
    if log_mlflow:
        mlflow, run = _mlflow_run("train")
        with run:
            mlflow.log_params({k: str(v) for k, v in asdict(params.classify).items() if k != "extra"})
            mlflow.log_params({"data_version": model.meta["data_version"], "train_rows": len(train_rows)})
            mlflow.set_tag("git_sha", model.meta["git_sha"])
            mlflow.log_metrics(_flat("", report))
            from pipeline.mlflow_model import OpinionsPyfunc

            try:
                mlflow.pyfunc.log_model(
                    name="model",
                    python_model=OpinionsPyfunc(),
                    artifacts={"model_dir": str(model_dir)},
                    pip_requirements=["opinions"],
                    registered_model_name=REGISTERED_MODEL,
                )
            except Exception as e:  # a registry problem must not lose a trained model
                typer.secho(f"MLflow へのモデル登録に失敗しました（モデルは {model_dir} に保存済み）: {e}", err=True, fg=typer.colors.YELLOW)
    return model


@app.command()
def train(
    labeled: Path = typer.Option(paths.LABELED_CSV, help="ラベル付きデータ（CSV）"),
    model_dir: Path = typer.Option(paths.DEFAULT_MODEL_DIR, "--model-dir", help="モデルの保存先"),
    no_mlflow: bool = typer.Option(False, "--no-mlflow", help="MLflow に記録しない"),
) -> None:
    """ラベル付きデータの train 分割で分類モデルを学習する。"""
    _setup_env()
    from pipeline.labeled import LabeledDataError

    try:
        train_default_model(model_dir, labeled, log_mlflow=not no_mlflow)
    except (LabeledDataError, FileNotFoundError) as e:
        _err(f"学習できません: {e}")


@app.command()
def evaluate(
    labeled: Path = typer.Option(paths.LABELED_CSV, help="ラベル付きデータ（CSV）"),
    model_dir: Path = typer.Option(paths.DEFAULT_MODEL_DIR, "--model-dir"),
    split_name: str = typer.Option("dev", "--split", help="評価する分割（dev / train / heldout: 候補一覧ごと学習に使わない照会回）"),
    out: Path = typer.Option(paths.METRICS, "--out", help="指標 JSON と混同行列の出力先"),
    windows: list[str] = typer.Option([], "--window", help="この照会回の行だけを評価する（複数指定可）"),
    no_mlflow: bool = typer.Option(False, "--no-mlflow"),
) -> None:
    """学習済みモデルを dev 分割で評価し、指標 JSON と混同行列の図を書き出す。"""
    _setup_env()
    from pipeline.classify import ModelFileError, load_model
    from pipeline.config import load_domain, load_params
    from pipeline.evaluate import (
        classification_metrics, counterfactual_metrics, dedupe_metrics, evaluate_model, mapping_by_list_size, nearest_train_similarity, per_window_metrics, stated_robustness,
    )  # fmt: skip
    from pipeline.labeled import HELDOUT, load_corpus_references, load_heldout, load_labeled, split
    from pipeline.report import confusion_figure

    domain, params = load_domain(), load_params()
    try:
        model = load_model(model_dir)
    except ModelFileError as e:
        _err(str(e))
    refs = load_corpus_references()
    if refs.problems:
        _err("参考文書のラベルに問題があります（引用が段落に見つからない）:\n" + "\n".join(refs.problems[:20]))
    heldout = split_name == HELDOUT
    rows = load_heldout(domain=domain, lists=refs.candidates) if heldout else split(load_labeled(labeled, domain), split_name)
    unknown = sorted(set(windows) - set(rows["window"]))
    if unknown:
        _err(f"分割「{split_name}」に照会回 {unknown} の行がありません（あるのは {sorted(set(rows['window']))}）。")
    if windows:
        rows = rows[rows["window"].isin(windows)].reset_index(drop=True)
    if rows.empty:
        _err(f"分割「{split_name}」の行がありません。")
    if heldout:
        out = out / HELDOUT
    metrics, cm, pred = evaluate_model(model, rows, domain, refs)
    metrics["per_window"] = per_window_metrics(pred, rows, domain)
    metrics["mapping_by_list_size"] = mapping_by_list_size(model, rows, domain, refs)
    metrics["stated_column_robustness"] = stated_robustness(model, rows, domain, refs)
    metrics["counterfactual"] = counterfactual_metrics(model, rows, domain, refs)
    metrics["dedupe"] = dedupe_metrics(rows, params.dedupe)
    if split_name != "train":
        # rows with a near-paraphrase in train (Jaccard >= 0.3) flatter the model: score the others apart
        sim = nearest_train_similarity(rows, split(load_labeled(labeled, domain), "train"))
        novel = sim < 0.3
        metrics["novel_subset"] = {k: v for k, v in classification_metrics(pred[novel].reset_index(drop=True), rows[novel].reset_index(drop=True), domain).items() if k != "per_class"}
    metrics["data_version"] = model.meta.get("data_version")
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    cm.to_csv(out / "confusion.csv", encoding="utf-8")
    fig_path = confusion_figure(cm, domain, out / "confusion.png")
    pred_cols = ["opinion_id", "category", "category_confidence", "prediction_set", "candidate_id", "candidate_confidence", "needs_review", "review_codes", "coverage", "resolved_by", "nearest_passage", "retrieved_passages"]
    gold = rows[["opinion_id", "category", "candidate_id"]].rename(columns={"category": "gold_category", "candidate_id": "gold_candidate"})
    pred[pred_cols].merge(gold, on="opinion_id").to_csv(out / f"predictions_{split_name}.csv", index=False, encoding="utf-8-sig")
    typer.echo(json.dumps({k: v for k, v in metrics.items() if k != "per_class"}, ensure_ascii=False, indent=1))
    if not no_mlflow:
        mlflow, run = _mlflow_run(f"evaluate-{split_name}")
        with run:
            mlflow.set_tag("git_sha", _git_sha())
            mlflow.log_param("data_version", metrics["data_version"])
            mlflow.log_metrics(_flat("", {k: v for k, v in metrics.items() if k != "data_version"}))
            mlflow.log_artifact(str(fig_path))
            mlflow.log_artifact(str(out / "metrics.json"))


@app.command()
def ablate(
    labeled: Path = typer.Option(paths.LABELED_CSV),
    out: Path = typer.Option(paths.METRICS / "ablation.csv", "--out"),
    sets: str = typer.Option("char;char,word;char,word,cues;char,word,cues,emb;emb;char,cues,emb", help="特徴量の組（; 区切り）"),
) -> None:
    """特徴量の組ごとにモデル全体を学習し直し、dev 分割で比較する（アブレーション）。params.yaml の組（chosen 列が true の行）は必ず含める。"""
    _setup_env()
    from pipeline.config import load_domain, load_params
    from pipeline.evaluate import ablation
    from pipeline.labeled import load_corpus_references, load_labeled, split

    domain, params = load_domain(), load_params()
    data = load_labeled(labeled, domain)
    chosen = tuple(params.classify.features)
    if chosen not in [tuple(s.split(",")) for s in sets.split(";")]:
        sets += ";" + ",".join(chosen)  # the row of the model `opinions train` trains is always there
    table = ablation(split(data, "train"), split(data, "dev"), domain, params.classify, [tuple(s.split(",")) for s in sets.split(";")], load_corpus_references())
    table["cue_weight"] = params.classify.cue_weight
    table["chosen"] = table["features"] == "+".join(chosen)  # the feature set of params.yaml
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    typer.echo(table.round(3).to_string(index=False))


# --------------------------------------------------------------------------- the batch


def load_or_train(model_dir: Path):
    """The default model; trained from data/labeled first when a fresh install has none."""
    from pipeline.classify import load_model

    if not (model_dir / "meta.json").exists():
        if not paths.LABELED_CSV.exists():
            _err(f"学習済みモデルが {model_dir} になく、学習用データ {paths.LABELED_CSV} もありません。`opinions train --labeled FILE` で学習してください。")
        typer.echo(f"学習済みモデルがないため、{paths.LABELED_CSV} から学習します（初回のみ、数分かかります）…", err=True)
        train_default_model(model_dir, paths.LABELED_CSV, log_mlflow=True, quiet=True)
    return load_model(model_dir)


KIND_INPUTS = {"候補一覧": "candidate-list", "候補案": "candidate-list", "方針案": "policy-draft", "推進方針案": "policy-draft"}
KIND_HELP = "照会回の種類: 候補一覧（candidate-list）／ 方針案（policy-draft）。既定: window.yaml の kind"


def kind_from_input(value: Optional[str]) -> Optional[str]:
    """--kind as people say it (方針案) or as window.yaml writes it (policy-draft)."""
    if value is None:
        return None
    return KIND_INPUTS.get(value.strip(), value.strip())


def _window_context(raw_dir: Path, kind: Optional[str]):
    """The window's kind and documents, for `run` and `stage classify` alike: stops when unusable."""
    kind = kind_from_input(kind)
    from pipeline.batch import load_window_context
    from pipeline.candidates import CandidateListError
    from pipeline.references import WindowMetaError

    try:
        context = load_window_context(raw_dir, kind)
    except CandidateListError as e:
        _err(f"候補一覧を読めません: {e}")
    except (WindowMetaError, OSError) as e:
        _err(f"照会回の設定を読めません: {e}")
    for p in context.references.problems:
        typer.echo(f"参考文書: {p}", err=True)
    if not context.references.passages:
        _err("参考文書の本文が一つもないため、解決済・記載の有無を判断できません。references/ を確認してください。")
    return context


def _stored_kind(context, queue, window: str):
    """Without window.yaml or --kind, the kind the queue already holds for this window (an earlier run's
    --kind) decides, so that classification and the export agree."""
    from dataclasses import replace

    from pipeline.queue import QueueError, window_info

    if context.meta.kind_source != "default":
        return context
    try:
        stored = window_info(queue, window)["kind"]
    except QueueError:
        return context  # a new window
    return replace(context, meta=replace(context.meta, kind=stored, kind_source="queue")) if stored else context


def _model_info(model, model_dir: Path) -> dict:
    """The model as recorded in run_manifest.json (by `run` and by `stage write`)."""
    return {"dir": str(model_dir), "data_version": model.meta.get("data_version"), "git_sha": model.meta.get("git_sha"), "trained_at": model.meta.get("trained_at")}


def _prior_decisions(db: Optional[str]):
    """(queue, the reviewers' decisions of earlier windows): the prior-window link carries them."""
    from pipeline.config import database_url
    from pipeline.queue import QueueError, decided_labels, open_queue

    try:
        queue = open_queue(database_url(db))
        return queue, decided_labels(queue)
    except QueueError as e:
        _err(f"確認キューを開けません（過去の照会回の人の判断を読むために必要です）。何も書いていません: {e}")


@app.command()
def run(
    raw_dir: Path = typer.Argument(..., metavar="受信フォルダ", help="意見照会の受信ファイルのフォルダ（data/raw/<window>/）"),
    window: Optional[str] = typer.Option(None, "--window", help="照会回の ID（既定: フォルダ名）"),
    out: Optional[Path] = typer.Option(None, "--out", help="出力先（既定: outputs/<window>/）"),
    model_dir: Path = typer.Option(paths.DEFAULT_MODEL_DIR, "--model-dir", help="分類モデルのフォルダ"),
    db: Optional[str] = typer.Option(None, "--db", help="確認キューのデータベース URL（既定: configs/queue.yaml）"),
    kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
) -> None:
    """1 回の意見照会の全意見を取り込み、重複をまとめ、対象候補と分類を付けて opinions.csv を書き、確認キューに載せる。"""
    _setup_env()
    from pipeline.batch import run_window
    from pipeline.classify import ModelFileError, analysers, classify_frame, reference_index
    from pipeline.config import load_domain, load_params
    from pipeline.ingest import IngestError

    window = window or raw_dir.resolve().name
    out = out or paths.window_output_dir(window)
    params = load_params()
    context = _window_context(raw_dir, kind)
    domain = context.domain(load_domain())
    try:
        model = load_or_train(model_dir)
    except ModelFileError as e:
        _err(str(e))
    model_info = _model_info(model, model_dir)
    an = analysers(model)
    index = reference_index(context.references.passages, domain, an, source=context.references.source)

    from pipeline.queue import QueueError

    queue, prior_decisions = _prior_decisions(db)
    context = _stored_kind(context, queue, window)
    if context.meta.kind == "policy-draft" and context.references.source == "bundled":
        typer.echo("注意: 方針案の照会回ですが references/ に方針案がないため、同梱の基本方針・候補一覧だけで判断します。記載の有無は判定しません。", err=True)

    def classify(frame):
        return classify_frame(model, frame, domain, index, context.meta.kind, progress=True, an=an)

    try:
        result, files = run_window(raw_dir, window, out, domain, params, classify, model_info, context, prior_decisions=prior_decisions)
    except IngestError as e:
        _err("取り込みを中止しました。次のファイルを確認してください:\n" + "\n".join(str(p) for p in e.problems))
    for p in result.problems:
        typer.echo(str(p), err=True)
    ops = result.opinions
    from pipeline.batch import output_frame
    from pipeline.queue import sync_window

    try:
        # the kind only when window.yaml or --kind states it; otherwise the stored kind stays
        synced = sync_window(queue, window, output_frame(ops), kind=context.meta.kind if context.meta.kind_source != "default" else None, candidates=context.candidates.manifest())
    except QueueError as e:
        _err(f"{files['opinions']} は書きましたが、確認キューへの反映に失敗しました: {e}")
    typer.echo(f"確認キュー: 新規 {synced['inserted']}、更新 {synced['updated']}（人の判断は変更していません）" + (f"、今回の入力にない意見 {synced['missing_now']}" if synced["missing_now"] else ""))
    typer.echo(
        f"{window}: {len(ops)} 件の意見（重複グループ {int((ops.groupby('dup_group').size() > 1).sum()) if len(ops) else 0}、"
        f"要確認 {int(ops['needs_review'].astype(bool).sum()) if len(ops) else 0}）→ {files['opinions']}"
    )
    if len(ops):
        counts = ops["category_label"].value_counts()
        typer.echo("分類: " + "、".join(f"{k} {v}" for k, v in counts.items()))
    # the meeting materials, as `opinions export --window W --out OUT` writes them (the same function)
    _write_materials(queue, window, out)


stage_app = JapaneseTyper(no_args_is_help=True, help="バッチの各段階を個別に実行する（DVC のステージが呼ぶ）。")
app.add_typer(stage_app, name="stage")


def _read_frame(path: Path):
    """A stage's input and the run record carried so far (batch.read_stage_frame)."""
    from pipeline.batch import read_stage_frame

    if not path.exists():
        _err(f"{path}: 入力ファイルがありません。前の段階を先に実行してください。")
    return read_stage_frame(path)


def _write_frame(frame, path: Path, record: dict) -> None:
    from pipeline.batch import write_stage_frame

    write_stage_frame(frame, path, record)
    typer.echo(f"{path}: {len(frame)} 行")


@stage_app.command("ingest")
def stage_ingest(raw_dir: Path, out: Path = typer.Option(..., "--out"), window: Optional[str] = typer.Option(None, "--window")) -> None:
    """受信ファイルを読み込み、1 意見 1 行の表（parquet）と取込レポートを書く。"""
    from pipeline.batch import problems_frame, problems_record
    from pipeline.config import load_domain, load_params
    from pipeline.ingest import IngestError, ingest_window

    window = window or raw_dir.resolve().name
    t0 = time.perf_counter()
    try:
        res = ingest_window(raw_dir, window, load_domain(), load_params().ingest)
    except IngestError as e:
        _err("取り込みを中止しました。次のファイルを確認してください:\n" + "\n".join(str(p) for p in e.problems))
    record = {"window": window, "raw_dir": str(raw_dir), "rows_in": int(len(res.opinions)), "problems": problems_record(res.problems), "timings_s": {"ingest": time.perf_counter() - t0}}
    for p in res.problems:
        typer.echo(str(p), err=True)
    _write_frame(res.opinions, out, record)
    problems_frame(res.problems).to_csv(out.with_name("ingest_report.csv"), index=False, encoding="utf-8-sig")


def _frame_stage(name: str, inp: Path, out: Path, record: dict | None = None, **kw) -> None:
    """One frame → frame stage (batch.stage_function, as `run` calls it); ``record``: what the stage adds
    to the run record (the stage's time is added here)."""
    from pipeline.batch import run_stage, stage_function
    from pipeline.config import load_params

    frame, carried = _read_frame(inp)
    fn = stage_function(name, load_params(), **kw)
    t0 = time.perf_counter()
    result = run_stage(name, frame, fn)
    carried = {**carried, **(record or {})}
    carried["timings_s"] = {**carried.get("timings_s", {}), name: time.perf_counter() - t0}
    _write_frame(result, out, carried)


@stage_app.command("normalise")
def stage_normalise(inp: Path, out: Path) -> None:
    """照合用の正規化テキストと連絡先の列を加える。"""
    _frame_stage("normalise", inp, out)


@stage_app.command("dedupe")
def stage_dedupe(inp: Path, out: Path) -> None:
    """同旨の意見（重複グループ）をまとめる。"""
    _frame_stage("dedupe", inp, out)


@stage_app.command("link-prior")
def stage_link_prior(
    inp: Path,
    out: Path,
    outputs_root: Path = typer.Option(paths.OUTPUTS, "--outputs-root"),
    window: str = typer.Option(..., "--window", help=WINDOW_HELP),
    db: Optional[str] = typer.Option(None, "--db", help="確認キューのデータベース URL（過去の照会回の人の判断を読む。既定: configs/queue.yaml）"),
) -> None:
    """過去の照会回の出力にある、ほぼ同一の意見と結び付ける（人の判断があればそれを、opinions run と同じ）。"""
    from pipeline.batch import load_prior_windows, prior_window_ids

    _queue_engine, decisions = _prior_decisions(db)
    prior = load_prior_windows(outputs_root, window, decisions)
    _frame_stage("link_prior", inp, out, record={"prior_windows": prior_window_ids(prior)}, prior=prior)


@stage_app.command("classify")
def stage_classify(
    inp: Path,
    out: Path,
    raw_dir: Path = typer.Option(..., "--raw-dir", help="照会回の受信フォルダ（references/ と window.yaml を読む）"),
    kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
    model_dir: Path = typer.Option(paths.DEFAULT_MODEL_DIR, "--model-dir"),
) -> None:
    """対象候補・分類・確信度・根拠となる記載・理由・要確認を付ける（opinions run と同じ関数）。"""
    _setup_env()
    from pipeline.classify import ModelFileError, analysers, classify_frame, load_model, reference_index
    from pipeline.config import load_domain

    context = _window_context(raw_dir, kind)
    try:
        model = load_model(model_dir)
    except ModelFileError as e:
        _err(str(e))
    domain = context.domain(load_domain())
    an = analysers(model)
    index = reference_index(context.references.passages, domain, an, source=context.references.source)
    record = {"model": _model_info(model, model_dir), "context": context.manifest()}
    _frame_stage("classify", inp, out, record=record, classify=lambda f: classify_frame(model, f, domain, index, context.meta.kind, progress=True, an=an))


@stage_app.command("write")
def stage_write(inp: Path, out_dir: Path) -> None:
    """opinions run と同じ関数（batch.write_outputs）で opinions.csv・ingest_report.csv・run_manifest.json を書く。"""
    from pipeline.batch import write_stage_outputs

    frame, record = _read_frame(inp)
    files = write_stage_outputs(frame, record, out_dir)
    typer.echo(f"{files['opinions']}: {len(frame)} 行（{files['ingest_report'].name}、{files['manifest'].name} も書きました）")


queue_app = JapaneseTyper(no_args_is_help=True, help="確認キュー: 一覧・判断・表計算ファイルからの取り込み・学習データへの書き出し。")
app.add_typer(queue_app, name="queue")

def category_from_input(value: str, domain) -> str:
    """The category code a person means: the Japanese label (「共有すべきもの」) or the code (SHARE).
    Lives in queue.py (the sheet import and notebooks read the same); here for the commands."""
    from pipeline.queue import category_from_input as parse

    return parse(value, domain)


def _queue(db: Optional[str]):
    from pipeline.config import database_url
    from pipeline.queue import QueueError, open_queue

    try:
        return open_queue(database_url(db))
    except QueueError as e:
        _err(str(e))


def _status(value: Optional[str]) -> Optional[str]:
    from pipeline.queue import status_from_input

    try:
        return status_from_input(value) if value is not None else None
    except ValueError as e:
        _err(str(e))


def _listing(engine, window: str, status: Optional[str], everything: bool, offset: int = 0, limit: Optional[int] = None):
    """Rows ``offset + 1`` … of the numbered listing `queue list` prints and `queue decide --row` recomputes
    (queue.numbered_queue: filtered, ordered and paged in SQL, so row N is the same row in both)."""
    from pipeline.queue import QueueError, numbered_queue

    try:
        return numbered_queue(engine, window, status, everything=everything, offset=offset, limit=limit)
    except QueueError as e:
        _err(str(e))


def _listing_count(engine, window: str, status: Optional[str], everything: bool) -> int:
    from pipeline.queue import QueueError, queue_count

    try:
        return queue_count(engine, window, status, everything=everything)
    except QueueError as e:
        _err(str(e))


LIST_ALL_UP_TO = 500  # `queue list` without --page prints every row up to this many, else the first page
PER_PAGE = 100  # rows per page when --per-page is not given


def list_page(total: int, page: Optional[int], per_page: Optional[int]) -> tuple[int, Optional[int], int]:
    """(offset, limit, page) of what `queue list` prints: everything when neither --page nor --per-page is
    given and the listing has at most LIST_ALL_UP_TO rows (limit None), else page ``page`` (1 by default)
    of ``per_page`` rows (PER_PAGE by default). Raises ValueError (in Japanese) for a page or size below 1."""
    if page is not None and page < 1:
        raise ValueError(f"--page には 1 以上のページ番号を指定してください（「{page}」）。")
    if per_page is not None and per_page < 1:
        raise ValueError(f"--per-page には 1 以上の件数を指定してください（「{per_page}」）。")
    if page is None and per_page is None and total <= LIST_ALL_UP_TO:
        return 0, None, 1
    page, per_page = page or 1, per_page or PER_PAGE
    return (page - 1) * per_page, per_page, page


def shown_rows(offset: int, shown: int, total: int) -> str:
    """Which rows of how many are shown: 「1〜50件目／全 200,000件」."""
    return f"{offset + 1:,}〜{offset + shown:,}件目／全 {total:,}件"


def _filters(status: Optional[str], everything: bool) -> str:
    return "".join(f" {o}" for o in ((f"--status {status}" if status else ""), ("--all" if everything else "")) if o)


@queue_app.command("list")
def queue_list(
    window: str = typer.Option(..., "--window", help=WINDOW_HELP),
    status: Optional[str] = typer.Option(None, "--status", help="確認待ち | 確定 | 要再確認（pending | decided | stale でも可）"),
    everything: bool = typer.Option(False, "--all", help="キューにない意見（確信度の高い除外）も含め、照会回の全意見を表示する"),
    page: Optional[int] = typer.Option(None, "--page", help=f"表示するページの番号（1 から）。省略時は {LIST_ALL_UP_TO} 件までなら全件、それより多ければ 1 ページ目"),
    per_page: Optional[int] = typer.Option(None, "--per-page", help=f"1 ページの件数（省略時 {PER_PAGE} 件）。左端の番号はページによらず一覧全体の通し番号"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """確認キュー（共有すべきもの・要確認・判断済み）を一覧表示する。左端の番号で判断できる:
    `queue decide --row 番号 --seen 確認コード`（同じ --status / --all を付ける）。表示後に本文や判断が変わっていれば記録せずに知らせる。
    件数が多いときはページに分けて表示する（--page / --per-page）。"""
    from pipeline.config import load_domain
    from pipeline.queue import STATUS_LABELS, QueueError, window_domain

    status = _status(status)
    engine = _queue(db)
    try:
        domain = window_domain(engine, window, load_domain())
    except QueueError as e:
        _err(str(e))
    total = _listing_count(engine, window, status, everything)
    try:
        offset, limit, page = list_page(total, page, per_page)
    except ValueError as e:
        _err(str(e))
    if total and offset >= total:
        pages = -(-total // limit)
        _err(f"{page} ページ目はありません（{window}{_filters(status, everything)}: 全 {total:,}件、1 ページ {limit:,} 件で {pages:,} ページまで）。")
    q = _listing(engine, window, status, everything, offset=offset, limit=limit)
    paged = limit is not None and len(q) < total
    typer.echo(
        f"{window}: " + (shown_rows(offset, len(q), total) if paged else f"{total:,} 件") + (f"（{STATUS_LABELS[status]}）" if status else "")
        + f"　判断するとき: opinions queue decide --row 番号 --window {window}{_filters(status, everything)} --reviewer 名前 --category 分類"
        + "（端末では意見を表示して確かめてから記録します。スクリプトからは --seen 確認コード）"
    )  # fmt: skip
    for r in q.itertuples():
        text = str(r.text).replace("\n", " ")
        typer.echo(
            f"{r.row:>4}  [{STATUS_LABELS[r.status]}] {r.opinion_id}  確認コード {r.read_code}  版 v{r.decision_version}  {r.final_candidate}（{domain.candidate_name(r.final_candidate).split('（')[0][:12]}） {domain.category_label(r.final_category)}"
            f"  確信度 {r.category_confidence:.2f}  同旨 {r.dup_count}  {text[:60]}"
        )
    if paged and offset + len(q) < total:
        typer.echo(f"次のページ: opinions queue list --window {window}{_filters(status, everything)} --page {page + 1} --per-page {limit}")


@queue_app.command("decide")
def queue_decide(
    opinion_id: Optional[str] = typer.Argument(None, metavar="意見ID", help="意見 ID（`queue list` の表示のまま）。--row で番号を指定するときは省略"),
    window: str = typer.Option(..., "--window", help=WINDOW_HELP),
    reviewer: str = typer.Option(..., "--reviewer", help="判断者の名前"),
    row: Optional[int] = typer.Option(None, "--row", help="`queue list` の左端の番号（一覧と同じ --status / --all を付ける）"),
    status: Optional[str] = typer.Option(None, "--status", help="--row の一覧の絞り込み（`queue list` と同じ）"),
    everything: bool = typer.Option(False, "--all", help="--row の一覧が --all 付きのとき"),
    category: Optional[str] = typer.Option(None, "--category", help="分類（「共有すべきもの」などの表示名、または SHARE などのコード）"),
    candidate: Optional[str] = typer.Option(None, "--candidate", help="対象候補（照会回の候補一覧の ID・番号・名称: C01、①、1、入札参加資格審査システム）"),
    addressed: Optional[str] = typer.Option(None, "--addressed", help="方針案に記載があるか: 記載あり | 記載なし"),
    revision: Optional[str] = typer.Option(None, "--revision", help="修正意見（記載なしの場合）"),
    note: Optional[str] = typer.Option(None, "--note", help="メモ"),
    only_this: bool = typer.Option(False, "--only-this", help="重複グループの他の意見には適用しない"),
    seen: Optional[str] = typer.Option(None, "--seen", help="必須: `queue list` に表示された確認コード（読んだ本文）。表示後に本文や同旨グループが変わっていたら中止する"),
    expect_version: Optional[int] = typer.Option(None, "--expect-version", help="一覧で見た判断の版（v の数字）。変わっていたら中止する"),
    overwrite: bool = typer.Option(False, "--overwrite", help="他の判断者の判断を上書きする"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """意見（既定では重複グループ全体）について分類・対象候補・記載の有無を確定する。

    端末から --seen なしで実行すると、意見の本文・理由・同旨グループと記録する判断を表示し、確かめてから記録する
    （確認コードを打ち込む必要はない）。スクリプトからは `queue list` の確認コードを --seen で渡す。"""
    from pipeline.candidates import candidate_from_input
    from pipeline.config import load_domain
    from pipeline.queue import Decision, QueueError, addressed_from_input, decide, window_domain, window_table

    ask = not seen or not seen.strip()
    if ask and not _can_ask():
        _err(
            "--seen に、判断する前に読んだ一覧（`opinions queue list`）の確認コードを指定してください。読んだ本文と今の本文が同じことを確かめるためです。"
            "端末から --seen なしで実行すると、意見を表示して確かめてから記録できます。変更は行っていません。"
        )  # fmt: skip
    if (row is None) == (opinion_id is None):
        _err("判断する意見を、意見 ID か --row 番号（`opinions queue list` の左端の番号）のどちらか一方で指定してください。変更は行っていません。")
    status = _status(status)
    engine = _queue(db)
    try:
        domain = window_domain(engine, window, load_domain())
        category = category_from_input(category, domain) if category is not None else None
        candidate = candidate_from_input(candidate, domain) if candidate is not None else None
        addressed = addressed_from_input(addressed) if addressed is not None else None
    except (QueueError, ValueError) as e:
        _err(f"{e}（変更は行っていません）")
    decision = Decision(category=category, candidate_id=candidate, addressed=addressed, revision_request=revision, note=note)
    shown = ""
    if row is not None:
        # nothing was stored by `queue list`: the same filters give the same listing, and the row's
        # 確認コード tells whether it still shows what the reviewer read
        q = _listing(engine, window, status, everything, offset=row - 1, limit=1) if row >= 1 else None
        if q is None or q.empty:
            total = _listing_count(engine, window, status, everything)
            _err(f"番号 {row} は一覧（{window}{_filters(status, everything)}: {total:,} 件）にありません。`opinions queue list --window {window}{_filters(status, everything)}` で確かめてください。変更は行っていません。")
        r = q.iloc[0]
        if not ask and r["read_code"] != seen.strip().lower():
            _err(
                f"一覧の {row} 番は、表示した後に変わっています（今は意見 {r['opinion_id']}、確認コード {r['read_code']}。指定された確認コードは {seen.strip()}）。"
                f"`opinions queue list --window {window}{_filters(status, everything)}` で読み直してから判断してください。変更は行っていません。"
            )
        opinion_id, shown = str(r["opinion_id"]), f"{row} 番 = 意見 {r['opinion_id']}、"
    if ask:
        # what the reviewer reads now is what the decision is checked against (its 確認コード)
        try:
            table = window_table(engine, window)
        except QueueError as e:
            _err(str(e))
        here = table[table["opinion_id"].astype(str) == opinion_id]
        if here.empty:
            _err(f"照会回「{window}」に意見 ID「{opinion_id}」はありません。`opinions queue list --window {window}` の左端の番号（--row）で指定できます。変更は行っていません。")
        target = here.iloc[0]
        members = table[(table["dup_key"] == target["dup_key"]) & table["present"].astype(bool)] if not only_this else here
        typer.echo(reading_text(target, members, domain, decision, only_this))
        if not _confirmed(typer.prompt("この内容で記録しますか？（はい: y ／ いいえ: n）", default="n", show_default=False)):
            typer.echo("記録しませんでした（変更は行っていません）。")
            raise typer.Exit(1)
        seen = str(target["read_code"])
    try:
        written = decide(
            engine, domain, window, opinion_id, reviewer, decision,
            whole_group=not only_this, expected_version=expect_version, overwrite=overwrite, seen=seen,
        )  # fmt: skip
    except QueueError as e:
        _err(str(e))
    typer.echo(f"判断を記録しました（{shown}{len(written)} 件: {', '.join(written)}）")


def _can_ask() -> bool:
    """Is a person at the terminal to read the opinion and answer (tests set it)?"""
    return sys.stdin.isatty()


def _confirmed(answer: str) -> bool:
    import unicodedata

    return unicodedata.normalize("NFKC", str(answer)).strip().lower() in ("y", "yes", "はい")


def reading_text(target, members, domain, decision, only_this: bool = False) -> str:
    """What `queue decide` shows before it records without a 確認コード: the opinion, its reason, the
    model's decision, the duplicate group and the decision to be recorded (pure; officers' details masked)."""
    from pipeline.export import mask_pii
    from pipeline.queue import ADDRESSED

    def text(v) -> str:
        return "" if v is None or (isinstance(v, float) and v != v) else str(v)

    bodies = [text(b) or "（団体名なし）" for b in members["body"]] if len(members) else []
    lines = [
        f"意見 {text(target['opinion_id'])}（{text(target['body']) or '団体名なし'}）",
        "本文: " + mask_pii(text(target["text"])).replace("\n", "\n      "),
        "理由: " + (mask_pii(text(target.get("reason"))).replace("\n", "\n      ") or "（空欄）"),
        f"モデルの判断: {domain.category_label(target['category'])}（確信度 {float(target['category_confidence'] or 0):.2f}）、"
        f"{target['candidate_id']} {domain.candidate_name(target['candidate_id'])}",
    ]
    if text(target.get("decision_reviewer")):
        lines.append(f"今の判断: {domain.category_label(target['decision_category'])}（{target['decision_reviewer']}）")
    lines.append(f"同旨グループ: {len(members)} 件（{'、'.join(bodies)}）" if len(members) > 1 else "同旨グループ: なし（この意見だけ）")
    chosen = [
        *([f"分類 {domain.category_label(decision.category)}"] if decision.category else []),
        *([f"対象候補 {decision.candidate_id} {domain.candidate_name(decision.candidate_id)}"] if decision.candidate_id else []),
        *([f"記載の有無 {ADDRESSED.get(decision.addressed, decision.addressed)}"] if decision.addressed else []),
        *([f"修正意見「{decision.revision_request}」"] if decision.revision_request else []),
        *([f"メモ「{decision.note}」"] if decision.note else []),
    ]
    scope = "この意見だけ" if only_this or len(members) <= 1 else f"同旨グループの {len(members)} 件すべて"
    lines.append(f"記録する判断（{scope}）: " + ("、".join(chosen) if chosen else "モデルの判断をそのまま確定"))
    return "\n".join(lines)


@queue_app.command("import")
def queue_import(
    file: Path = typer.Argument(..., metavar="ファイル", help="判断を記入した wt_export.xlsx（Excel・LibreOffice で並べ替え・列の追加をして保存し直したものでも可）"),
    window: str = typer.Option(..., "--window", help=WINDOW_HELP),
    reviewer: str = typer.Option(..., "--reviewer", help="判断者の名前"),
    dry_run: bool = typer.Option(False, "--dry-run", help="書き込まずに、取り込んだ場合の結果だけを表示する"),
    force: bool = typer.Option(False, "--force", help="エラーの行があっても、エラーのない行は取り込む"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """表計算ファイル（wt_export.xlsx）の「判断：」列に記入した判断を確認キューに取り込む（行ごとに重複グループ全体、queue decide と同じ確認）。"""
    from pipeline.config import load_domain
    from pipeline.queue import QueueError
    from pipeline.sheet_import import SheetImportError, describe, import_sheet, summary

    engine = _queue(db)
    try:
        result = import_sheet(engine, load_domain(), window, file, reviewer, dry_run=dry_run, force=force)
    except (SheetImportError, QueueError) as e:
        _err(f"{e}（変更は行っていません）")
    for o in result.outcomes:
        for line in describe(o):
            typer.echo(line, err=o.result in ("error", "conflict", "stale"))
    counts = result.counts()
    head = "試行（--dry-run・書き込みなし）" if result.dry_run else "取り込み"
    typer.echo(f"{head}: {summary(result)}（記入のあった行 {len(result.outcomes)}）")
    if result.blocked:
        if result.dry_run:
            _err("エラーがあるため、このまま取り込むと何も取り込まれません。表示したセルを直すか、--force でエラーの行を除いて取り込んでください。")
        _err("エラーがあるため、何も取り込んでいません。表示したセルを直して取り込み直すか、--force でエラーの行を除いて取り込んでください。")
    if not result.dry_run:
        typer.echo(f"判断を記録した意見: {len(result.written)} 件" + ("。`opinions export` で会議資料を作り直せます" if result.written else ""))
    if counts["conflict"] or counts["stale"] or counts["error"]:
        raise typer.Exit(1)


@queue_app.command("harvest")
def queue_harvest(
    window: str = typer.Option(..., "--window", help=WINDOW_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="既定: data/labeled/harvested/<window>.csv"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """確定した判断を学習データ（次回の opinions train が読む）として書き出す。"""
    from pipeline.config import load_domain
    from pipeline.candidates import from_manifest
    from pipeline.labeled import LabeledDataError, candidates_file, dev_text_rows, load_labeled, refused_dev_message, validate
    from pipeline.queue import QueueError, harvest, window_info

    try:
        engine = _queue(db)
        rows = harvest(engine, window)
    except QueueError as e:
        _err(str(e))
    if rows.empty:
        _err(f"{window}: 確定した判断がありません。", code=1)
    domain = load_domain()
    stored = window_info(engine, window)["candidates"]
    lists = {window: from_manifest(stored)} if stored else {}
    try:
        validate(rows, domain, f"照会回「{window}」の確定した判断", lists)
    except LabeledDataError as e:
        _err(f"確定した判断を学習データとして書き出せません。何も書いていません: {e}")
    out = out or paths.HARVESTED / f"{window}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.to_csv(out, index=False, encoding="utf-8")
    if stored:  # the window's own candidate list travels with its rows (the next training reads it)
        candidates_file(out).write_text(json.dumps(stored, ensure_ascii=False, indent=1), encoding="utf-8")
    dev = int(dev_text_rows(rows, load_labeled(domain=domain)).sum())
    typer.echo(f"{out}: {len(rows)} 件（担当者の連絡先は除いています。次回の学習で train に加わります）")
    if dev:
        typer.secho(refused_dev_message(dev, str(out)), err=True, fg=typer.colors.YELLOW)


@app.command()
def export(
    window: str = typer.Option(..., "--window", help=WINDOW_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="既定: outputs/<window>/"),
    db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
) -> None:
    """WT 会議用の wt_export.csv / wt_export.xlsx（「判断：」列に記入して `queue import` で取り込める）と report.html を書き出す。"""
    engine = _queue(db)
    _write_materials(engine, window, out or paths.window_output_dir(window))


def _write_materials(engine, window: str, out: Path) -> None:
    """The meeting materials of `export` and of the end of `run` (export.export_window), and their paths."""
    from pipeline.config import load_domain
    from pipeline.export import export_window
    from pipeline.queue import QueueError

    try:
        made = export_window(engine, window, out, load_domain())
    except QueueError as e:
        _err(str(e))
    typer.echo(f"{window}: {made.groups} グループ（共有 {made.shared}、除外 {made.groups - made.shared}）")
    typer.echo(f"会議資料: {made.csv}")
    typer.echo(f"          {made.xlsx}（「判断：」列に記入し `opinions queue import {made.xlsx} --window {window} --reviewer 名前` で取り込めます）")
    typer.echo(f"          {made.report}")


@app.command("dedupe-eval")
def dedupe_eval(labeled: Path = typer.Option(paths.LABELED_CSV), split_name: str = typer.Option("dev", "--split")) -> None:
    """ラベル付きデータの重複グループに対する重複検出のペア単位の適合率・再現率・F1 を表示する。"""
    from pipeline.config import load_domain, load_params
    from pipeline.evaluate import dedupe_metrics
    from pipeline.labeled import load_labeled, split

    rows = split(load_labeled(labeled, load_domain()), split_name)
    typer.echo(json.dumps(dedupe_metrics(rows, load_params().dedupe), ensure_ascii=False, indent=1))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
