"""The `Leaderboard` tab: ratings with intervals, the pairwise matrix, the two-model
headline, and the exports (votes CSV/Parquet, DPO pairs). All figures come from
`ftassist.arena.ratings.summary`; this module only lays them out."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

# ratings/export (scipy) are imported by the handlers, not at app start: scipy alone costs seconds.

from .context import UIContext

TABLE_COLUMNS = ["rank", "model", "rating", "95% CI", "wins", "losses", "ties", "votes", "win rate",
                 "win rate 95% CI", "online Elo"]


def _table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [[r["rank"], r["model"], round(r["rating"], 1), f"{r['ci_low']:.0f} to {r['ci_high']:.0f}",
          r["wins"], r["losses"], r["ties"], r["votes"], f"{r['win_rate']:.1%}",
          f"{r['win_rate_low']:.1%} to {r['win_rate_high']:.1%}", round(r["elo"], 1)] for r in rows],
        columns=TABLE_COLUMNS,
    )


def _chart(rows: list[dict]) -> pd.DataFrame:
    """Long form for a scatter plot: each model's rating and its two 95% bounds."""
    points = []
    for r in rows:
        points += [{"model": r["model"], "rating": r["rating"], "figure": "Bradley-Terry rating"},
                   {"model": r["model"], "rating": r["ci_low"], "figure": "95% CI low"},
                   {"model": r["model"], "rating": r["ci_high"], "figure": "95% CI high"}]
    return pd.DataFrame(points, columns=["model", "rating", "figure"])


def _pairwise(rates: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    cells = rates.copy().astype(object)
    for row in rates.index:
        for col in rates.columns:
            n = int(counts.loc[row, col])
            cells.loc[row, col] = "" if row == col or n == 0 else f"{rates.loc[row, col]:.0%} (n={n})"
    cells.insert(0, "row beats column", list(rates.index))
    return cells


def _headline(head: dict | None, n_votes: int, n_models: int) -> str:
    if n_votes == 0:
        return "No votes yet. Share the arena (`python app.py --arena-only`) and collect some."
    if head is None:
        return f"**{n_votes} votes** among {n_models} models. Ratings are Bradley-Terry (FastChat's method)."
    return (
        f"### {head['model']} wins {head['win_rate']:.1%} against {head['opponent']}\n"
        f"95% interval {head['win_rate_low']:.1%} to {head['win_rate_high']:.1%}, ties counted as half, "
        f"from **{head['votes']} votes** ({head['wins']} wins, {head['losses']} losses, {head['ties']} ties). "
        + ("Above 50% across the whole interval: the fine-tuned model is better."
           if head["win_rate_low"] > 0.5 else
           "Below 50% across the whole interval: the fine-tuned model is worse."
           if head["win_rate_high"] < 0.5 else
           "The interval includes 50%: not enough evidence either way yet.")
    )


def refresh(rounds: float = 1000):
    from ftassist.arena import ratings

    try:
        data = ratings.summary(rounds=int(rounds or 0))
    except Exception as exc:  # noqa: BLE001 - one clear line, no traceback to the page
        raise gr.Error(f"Could not compute the leaderboard: {exc}")
    rows = data["leaderboard"]
    return (_headline(data["headline"], data["votes"], len(rows)), _table(rows), _chart(rows),
            _pairwise(data["pairwise"], data["pairwise_counts"]))


def _export_dir() -> Path:
    # Files handed to gr.File must live where Gradio may serve them: the temp dir.
    return Path(tempfile.mkdtemp(prefix="ftassist-export-"))


def export_csv():
    from ftassist.arena import export

    path = _export_dir() / "arena_votes.csv"
    export.export_votes(path, "csv")
    return str(path)


def export_parquet():
    from ftassist.arena import export

    path = _export_dir() / "arena_votes.parquet"
    export.export_votes(path, "parquet")
    return str(path)


def export_dpo():
    from ftassist.arena import export

    path = _export_dir() / "arena_dpo.jsonl"
    n = export.export_dpo(path)
    if n == 0:
        gr.Warning("No decisive votes on unflagged battles yet: the DPO file is empty.")
    return str(path)


def build(ctx: UIContext) -> None:
    headline = gr.Markdown("Press *Refresh* to compute the ratings.", elem_id="leaderboard-headline")
    with gr.Row():
        rounds = gr.Number(value=1000, precision=0, label="Bootstrap rounds (for the 95% intervals)")
        refresh_button = gr.Button("Refresh", variant="primary")
    table = gr.Dataframe(headers=TABLE_COLUMNS, label="Leaderboard", interactive=False, wrap=True,
                         elem_id="leaderboard-table")
    chart = gr.ScatterPlot(x="model", y="rating", color="figure", title="Ratings with 95% intervals",
                           label="Ratings", height=320)
    pairwise = gr.Dataframe(label="Pairwise win rate (row against column, ties as half; n = votes)",
                            interactive=False)
    gr.Markdown("### Export")
    with gr.Row():
        csv_button = gr.Button("Votes as CSV")
        parquet_button = gr.Button("Votes as Parquet")
        dpo_button = gr.Button("DPO preference dataset (JSONL)")
    download = gr.File(label="Download", interactive=False)

    refresh_button.click(refresh, [rounds], [headline, table, chart, pairwise], api_name="leaderboard")
    csv_button.click(export_csv, None, download, api_name="export_votes_csv")
    parquet_button.click(export_parquet, None, download, api_name="export_votes_parquet")
    dpo_button.click(export_dpo, None, download, api_name="export_dpo")
