"""The `Leaderboard` tab: ratings with intervals (plain and style-controlled) and beside them each model's
newest stored automatic measures (the Evaluate step's) and the LLM judge's rating, the pairwise matrix,
the two-model headline, the exports (votes CSV/Parquet, DPO pairs), "Train on these votes" with the
loops it started, and the optional LLM judge. All figures come from the use cases
(`ftassist.usecases.arena`, `ftassist.usecases.preference_loop`); this module only lays them out."""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from ftassist.usecases import arena as arena_cases
from ftassist.usecases import preference_loop
from ftassist.usecases.context import Context, UseCaseError

from .context import UIContext

TABLE_COLUMNS = ["rank", "model", "rating", "95% CI", "wins", "losses", "ties", "votes", "win rate",
                 "win rate 95% CI", "online Elo", "style-controlled rating", "style-controlled 95% CI",
                 "points from style", "points from length"]
# beside the human ratings: the newest stored automatic measures and the LLM judge's (the main table only)
MEASURES = (("rouge_l", "ROUGE-L"), ("bleu", "BLEU"), ("exact_match", "exact match / task accuracy"),
            ("perplexity", "perplexity"))
BESIDE_COLUMNS = [name for _, name in MEASURES] + ["general answers vs base", "measured on", "LLM judge rating",
                                                   "judge agrees with human majority"]
BOARD_COLUMNS = TABLE_COLUMNS + BESIDE_COLUMNS
VERDICTS = {
    "better": "Above 50% across the whole interval: the fine-tuned model is better.",
    "worse": "Below 50% across the whole interval: the fine-tuned model is worse.",
    "undecided": "The interval includes 50%: not enough evidence either way yet.",
}




def _styled(r: dict) -> bool:
    return r.get("style_rating") is not None


def _cells(r: dict) -> list:
    return [r["rank"], r["model"], round(r["rating"], 1), f"{r['ci_low']:.0f} to {r['ci_high']:.0f}",
            r["wins"], r["losses"], r["ties"], r["votes"], f"{r['win_rate']:.1%}",
            f"{r['win_rate_low']:.1%} to {r['win_rate_high']:.1%}", round(r["elo"], 1),
            round(r["style_rating"], 1) if _styled(r) else "",
            f"{r['style_ci_low']:.0f} to {r['style_ci_high']:.0f}" if _styled(r) else "",
            f"{r['style_points']:+.0f}" if _styled(r) else "",
            f"{r['length_points']:+.0f}" if _styled(r) else ""]


def _table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([_cells(r) for r in rows], columns=TABLE_COLUMNS)


def _figure(value: float | None, interval: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" + (f" ({interval[0]:.3g} to {interval[1]:.3g})" if interval else "")


def _agreement(record: dict | None) -> str:
    if not record:
        return "no battle with both"
    text = f"{record['rate']:.0%} of {record['battles']} battles"
    return text + (f" ({record['interval'][0]:.0%} to {record['interval'][1]:.0%})" if record["interval"] else "")


def _general(forgetting: dict | None) -> str:
    if not forgetting or forgetting.get("accuracy_change") is None:
        return "-"
    interval = forgetting.get("accuracy_change_interval")
    return (f"{forgetting['accuracy_change'] * 100:+.0f} points" + (
        f" ({interval[0] * 100:+.0f} to {interval[1] * 100:+.0f})" if interval else "")
        + (": forgot" if forgetting.get("forgot") else ""))


def _beside(r: dict) -> list:
    """The row's newest stored automatic measures and the LLM judge's figures, as cells."""
    judge = r.get("judge")
    judged = (["no verdict", "-"] if not judge else
              [f"{judge['rating']:.0f} ({judge['ci_low']:.0f} to {judge['ci_high']:.0f})", _agreement(judge["agreement"])])
    measured = r.get("evaluation")
    if not measured:
        return ["not evaluated: run the Evaluate step", "", "", "", "", "", *judged]
    return [*[_figure(measured.get(key), measured["intervals"].get(key)) for key, _ in MEASURES],
            _general(measured.get("forgetting")), f"{measured['data']} ({measured['data_hash_short']})", *judged]


def _board(rows: list[dict]) -> pd.DataFrame:
    """The main table: the human ratings, and beside them the stored measures and the judge's."""
    return pd.DataFrame([_cells(r) + _beside(r) for r in rows], columns=BOARD_COLUMNS)


def _chart(rows: list[dict]) -> pd.DataFrame:
    """Long form for a scatter plot: each model's rating and its two 95% bounds (and, when the votes
    have answers, its style-controlled rating)."""
    points = []
    for r in rows:
        points += [{"model": r["model"], "rating": r["rating"], "figure": "Bradley-Terry rating"},
                   {"model": r["model"], "rating": r["ci_low"], "figure": "95% CI low"},
                   {"model": r["model"], "rating": r["ci_high"], "figure": "95% CI high"}]
        if _styled(r):
            points.append({"model": r["model"], "rating": r["style_rating"], "figure": "style-controlled rating"})
    return pd.DataFrame(points, columns=["model", "rating", "figure"])


def _style_text(rows: list[dict], head: dict | None) -> str:
    """What the answers' style (length, markdown) did to the ranking, per model, in words."""
    styled = [r for r in rows if _styled(r)]
    if not styled:
        return ""
    lines = ["", "**Style control** (FastChat's method): the same votes with the answers' length and markdown "
                 "(headers, lists, bold) held equal, so a model cannot climb by writing more."]
    if head is not None and head.get("style_lead") is not None:
        lead, kept = head["lead"], head["style_lead"]
        lines.append(f"{head['model']} leads {head['opponent']} by {lead:+.0f} rating points; with style "
                     f"controlled, by {kept:+.0f}" + (f", so {min(1.0, (lead - kept) / lead):.0%} of its lead is "
                                                    "style." if lead > 1 and lead > kept else "."))
    for r in styled:
        plain = r["style_rating"] + r["style_points"]  # the plain rating on the votes that have answers
        line = (f"- {r['model']}: {plain:.0f} plain, {r['style_rating']:.0f} style-controlled "
                f"({r['style_ci_low']:.0f} to {r['style_ci_high']:.0f}); style is worth {r['style_points']:+.0f} "
                f"points to it, length alone {r['length_points']:+.0f}")
        lead = plain - 1000
        if lead > 1 and r["style_points"] > 0:
            line += f": {min(1.0, r['style_points'] / lead):.0%} of its {lead:.0f}-point lead over the average is style"
        lines.append(line + ".")
    return "\n".join(lines)


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


def _beside_text(judge: dict | None, not_evaluated: list[str]) -> str:
    """Under the headline: what the judge's figures rest on, and which models still need the Evaluate step."""
    lines = []
    if judge:
        record = judge["agreement"]
        if record:
            line = (f"**LLM judge** {judge['judge']}: its verdict matches the human majority on {record['agree']} of "
                    f"{record['battles']} battles both judged ({record['rate']:.0%}")
            line += (f", 95% interval {record['interval'][0]:.0%} to {record['interval'][1]:.0%})" if record["interval"]
                     else "; too few battles for an interval)")
        else:
            line = f"**LLM judge** {judge['judge']}: no battle has both its verdict and a human majority yet"
        lines.append(line + ". Its ratings are in the table, kept apart from the votes.")
    if not_evaluated:
        lines.append(f"Not evaluated: {', '.join(not_evaluated)}. Run the Evaluate step (the Evaluate tab, or "
                     "`ftassist eval`) to see ROUGE-L, BLEU, exact match, perplexity and forgetting beside the votes.")
    return "".join(f"\n\n{line}" for line in lines)


def refresh(app: Context, rounds: float = 1000):
    try:
        data = arena_cases.leaderboard_summary(app, rounds=int(rounds or 0))
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    return (_headline(data.headline, data.votes, len(data.rows)) + _style_text(data.rows, data.headline)
            + (f"\n\nLeft out: {data.flagged_votes} flagged vote(s), kept for review (too fast, a one-sided burst, "
               "an unreviewed question)." if data.flagged_votes else "")
            + _beside_text(data.judge, data.not_evaluated),
            _board(data.rows), _chart(data.rows), _pairwise(data.models, data.pairwise))


# -- the preference loop: votes train the next model --------------------------------------------------
def tuned_choices(app: Context):
    """The arena models a training run made (the ones whose votes can train a next version)."""
    models = [m for m in arena_cases.list_models(app) if m.config.get("run_dir")]
    return gr.update(choices=[(m.display_name, m.id) for m in models])


def _loops_text(loops: list) -> str:
    if not loops:
        return "No run has trained on the votes yet."
    lines = []
    for loop in loops:
        line = f"- **{loop.parent_name}** trained on {loop.pairs} pairs: run `{loop.run_id}`, {loop.status}"
        if loop.child_name:
            line += f"; new model **{loop.child_name}**"
        if loop.message:
            line += f" ({loop.message})"
        head = loop.head_to_head
        if head:
            line += (f". Against its parent it wins **{head['win_rate']:.0%}** (95% interval {head['win_rate_low']:.0%}"
                     f" to {head['win_rate_high']:.0%}, {head['votes']} votes): "
                     + {"better": "the votes made it better.", "worse": "the votes made it worse.",
                        "undecided": "not told apart yet, vote on more battles."}[head["verdict"]])
        lines.append(line)
    return "\n".join(lines)


def refresh_loops(app: Context) -> str:
    """The loops, after taking any whose run ended one step further."""
    return _loops_text(preference_loop.finish_preference_loops(app))


def train_on_votes(app: Context, model: str | None, min_votes: float = preference_loop.DEFAULT_MIN_VOTES):
    """Start a DPO run on the chosen model's votes; the result (or why it did not start) and the loops."""
    if not model:
        raise gr.Error("Pick the fine-tuned model whose votes to train on (a model registered from a run).")
    try:
        result = preference_loop.train_on_votes(app, model, min_votes=int(min_votes or 1))
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    text = result.message
    if result.dropped_text:
        text += "\n\n" + "\n".join(f"- {line}" for line in result.dropped_text)
    text += f"\n\n*{result.rules}*"
    return text, _loops_text(preference_loop.preference_loops(app))


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
    table = gr.Dataframe(headers=BOARD_COLUMNS, label="Leaderboard", interactive=False, wrap=True,
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

    gr.Markdown("### Train on these votes")
    gr.Markdown("The votes on a fine-tuned model become preference pairs (the chosen answer against the other) "
                "and train its next version with DPO, starting from the model itself. When the run ends, the new "
                "model joins the arena with battles against its parent on the same prompts: vote on them, and "
                "this table says whether the votes made it better.")
    with gr.Row():
        tuned_model = gr.Dropdown(choices=[], label="Fine-tuned model (registered from a run)", interactive=True)
        min_votes = gr.Number(value=preference_loop.DEFAULT_MIN_VOTES, precision=0,
                              label="Start with at least this many usable pairs")
        train_button = gr.Button("Train on these votes")
    train_result = gr.Markdown(elem_id="train-on-votes-result")
    loops = gr.Markdown(elem_id="preference-loops")

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
    refresh_button.click(ctx.bind(refresh_loops), None, loops, api_name="preference_loops")
    tuned_model.focus(ctx.bind(tuned_choices), None, tuned_model, api_name=False)
    train_button.click(ctx.bind(train_on_votes), [tuned_model, min_votes], [train_result, loops],
                       api_name="train_on_votes")
    judge_model.focus(ctx.bind(judge_choices), None, judge_model, api_name=False)
    judge_button.click(ctx.bind(run_judge), [judge_model, use_reference, redo, rounds], [judge_summary, judge_table],
                       api_name="judge_battles")
    csv_button.click(ctx.bind(export_csv), None, download, api_name="export_votes_csv")
    parquet_button.click(ctx.bind(export_parquet), None, download, api_name="export_votes_parquet")
    dpo_button.click(ctx.bind(export_dpo), None, download, api_name="export_dpo")
