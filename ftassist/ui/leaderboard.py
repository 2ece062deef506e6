"""The `Leaderboard` tab: ratings with intervals, the pairwise matrix, the two-model
headline, the exports (votes CSV/Parquet, DPO pairs) and the optional LLM judge. All
figures come from the arena use cases (`ftassist.usecases.arena`); this module only lays them out."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from ftassist.usecases import arena as arena_cases
from ftassist.usecases.context import Context, UseCaseError

from .context import UIContext

TABLE_COLUMNS = ["rank", "model", "rating", "95% CI", "wins", "losses", "ties", "votes", "win rate",
                 "win rate 95% CI", "online Elo"]
VERDICTS = {
    "better": "Above 50% across the whole interval: the fine-tuned model is better.",
    "worse": "Below 50% across the whole interval: the fine-tuned model is worse.",
    "undecided": "The interval includes 50%: not enough evidence either way yet.",
}




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


def _pairwise(models: list[str], pairwise: dict) -> pd.DataFrame:
    cells = [[row] + ["" if pairwise[row][col]["rate"] is None else
                      f"{pairwise[row][col]['rate']:.0%} (n={pairwise[row][col]['n']})" for col in models]
             for row in models]
    return pd.DataFrame(cells, columns=["row beats column", *models])


def _headline(head: dict | None, n_votes: int, n_models: int) -> str:
    if n_votes == 0:
        return "No votes yet. Share the arena (`python app.py --arena-only`) and collect some."
    if head is None:
        return f"**{n_votes} votes** among {n_models} models. Ratings are Bradley-Terry (FastChat's method)."
    return (
        f"### {head['model']} wins {head['win_rate']:.1%} against {head['opponent']}\n"
        f"95% interval {head['win_rate_low']:.1%} to {head['win_rate_high']:.1%}, ties counted as half, "
        f"from **{head['votes']} votes** ({head['wins']} wins, {head['losses']} losses, {head['ties']} ties). "
        + VERDICTS[head["verdict"]]
    )


def refresh(app: Context, rounds: float = 1000):
    try:
        data = arena_cases.leaderboard_summary(app, rounds=int(rounds or 0))
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return (_headline(data.headline, data.votes, len(data.rows)), _table(data.rows), _chart(data.rows),
            _pairwise(data.models, data.pairwise))


def _export_dir() -> Path:
    # Files handed to gr.File must live where Gradio may serve them: the temp dir.
    return Path(tempfile.mkdtemp(prefix="ftassist-export-"))


def export_csv(app: Context):
    return arena_cases.export_votes(app, str(_export_dir() / "arena_votes.csv"), "csv").path


def export_parquet(app: Context):
    return arena_cases.export_votes(app, str(_export_dir() / "arena_votes.parquet"), "parquet").path


def export_dpo(app: Context):
    written = arena_cases.export_dpo(app, str(_export_dir() / "arena_dpo.jsonl"))
    if written.count == 0:
        gr.Warning("No decisive votes on unflagged battles yet: the DPO file is empty.")
    return written.path


def judge_choices(app: Context):
    """The registered models that can judge, as (display name, id) pairs."""
    return gr.update(choices=[(m.display_name, m.id) for m in arena_cases.list_judges(app)])


def _agreement_text(agreement: dict) -> str:
    if not agreement["n_pairs"]:
        return "No battle has both a human vote and a verdict yet, so there is no agreement figure."
    text = (f"Agreement with human votes: **{agreement['agreement']:.1%}** over {agreement['n_pairs']} votes on "
            f"{agreement['n_battles']} battles")
    if agreement["agreement_without_ties"] is not None:
        text += f" ({agreement['agreement_without_ties']:.1%} where neither called a tie)"
    if agreement["kappa"] is not None:
        text += f", Cohen's kappa {agreement['kappa']:.2f} (0: chance, 1: always agree)"
    return text + "."


def run_judge(app: Context, judge_model: str | None, use_reference: bool, redo: bool, rounds: float = 1000):
    """Judge the battles with a registered API model; its ratings and its agreement with people."""
    if not judge_model:
        raise gr.Error("Pick the judge: a registered API model (OpenAI or an OpenAI-compatible server). "
                       "Register one in the Arena tab.")
    try:
        result = arena_cases.judge_battles(app, judge=judge_model, redo=bool(redo),
                                           use_reference=bool(use_reference), rounds=int(rounds or 0))
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    if result.judged or result.failed:
        head = (f"**{result.judged} battles judged**, each in both orders (a verdict that flips "
                "with the order counts as a tie).")
    else:
        head = "Nothing new to judge: this judge has a verdict on every battle (tick *Judge again* to redo)."
    if result.failed:
        head += (f" {result.failed} failed and were not stored, so the next run retries them; the first error: "
                 f"{result.errors[0]['error']}")
    return f"{head}\n\n{_agreement_text(result.agreement)}", _table(result.leaderboard)


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

    with gr.Accordion("LLM judge (a second opinion, kept apart from the votes)", open=False):
        gr.Markdown("An API model reads each battle twice, with the answers in both orders (MT-Bench's pairwise "
                    "method). Its verdicts never count as votes: they get their own ratings below, and the "
                    "agreement rate says how far to trust them.")
        with gr.Row():
            judge_model = gr.Dropdown(choices=[], label="Judge (a registered API model)", interactive=True)
            use_reference = gr.Checkbox(label="Show the judge the reference answer", value=False)
            redo = gr.Checkbox(label="Judge again battles it has judged", value=False)
        judge_button = gr.Button("Judge the battles")
        judge_summary = gr.Markdown()
        judge_table = gr.Dataframe(headers=TABLE_COLUMNS, label="Ratings from the judge's verdicts",
                                   interactive=False, wrap=True)

    refresh_button.click(ctx.bind(refresh), [rounds], [headline, table, chart, pairwise], api_name="leaderboard")
    judge_model.focus(ctx.bind(judge_choices), None, judge_model, api_name=False)
    judge_button.click(ctx.bind(run_judge), [judge_model, use_reference, redo, rounds], [judge_summary, judge_table],
                       api_name="judge_battles")
    csv_button.click(ctx.bind(export_csv), None, download, api_name="export_votes_csv")
    parquet_button.click(ctx.bind(export_parquet), None, download, api_name="export_votes_parquet")
    dpo_button.click(ctx.bind(export_dpo), None, download, api_name="export_dpo")
