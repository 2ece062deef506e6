"""The `Data` tab: upload, check, see what is wrong and where, fix, split and download."""

from __future__ import annotations

import html
import json
from pathlib import Path

import gradio as gr
import pandas as pd

from ftassist.plan import providers
from ftassist.usecases import data
from ftassist.usecases.context import Context, UseCaseError
from ftassist.usecases.session import Dataset, Session

from .context import UIContext

STATUS_STYLE = {
    "pass": ("#e6f4ea", "#137333", "PASS"),
    "warn": ("#fef7e0", "#b06000", "WARN"),
    "fail": ("#fce8e6", "#c5221f", "FAIL"),
    "not_checked": ("#f1f3f4", "#5f6368", "NOT CHECKED"),  # nothing to judge: grey, never a green PASS
}
DEFAULT_MODELS = ["gpt-4.1-mini-2025-04-14", "gpt-4.1-2025-04-14", "gpt-4.1-nano-2025-04-14",
                  "gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06", "gpt-3.5-turbo-0125"]
ERROR_COLUMNS = ["line", "code", "message", "hint"]  # "line" holds the grouped lines: "1-4,130"
MAX_ERROR_ROWS = 5000


def model_choices() -> list[str]:
    try:
        from ftassist.plan.pricing import model_names

        return list(model_names()) or DEFAULT_MODELS
    except Exception:  # noqa: BLE001 - the pricing data is optional for this tab
        return DEFAULT_MODELS


def model_options(today=None) -> list[tuple[str, str]]:
    """(label, model) pairs: a model that shuts down within 90 days, or already has, says so in its label."""
    return [(f"{name} ⚠ {warning}" if (warning := providers.model_warning(name, today)) else name, name)
            for name in model_choices()]


def default_model(today=None) -> str:
    """The dropdown's first value: the usual default, unless it shuts down soon and another model does not."""
    return providers.preferred_model(model_choices(), DEFAULT_MODELS[0], today)


def model_info(model: str | None, today=None) -> str:
    """The line under the dropdown: the chosen model's shutdown warning, or what the choice is for."""
    warning = providers.model_warning(model, today)
    return f"⚠ {warning}" if warning else "Sets the tokenizer and the per-example token limit the check uses."


def model_info_update(model: str | None):
    """Event handler: the warning follows the model chosen."""
    return gr.update(info=model_info(model))


def checklist_html(items: list[dict]) -> str:
    """Coloured rows that expand into their evidence. Every dataset string is escaped."""
    rows = []
    for item in items:
        bg, fg, label = STATUS_STYLE.get(item["status"], STATUS_STYLE["warn"])
        evidence = "".join(
            f"<li><b>{_where_line(ev)}</b>: {html.escape(str(ev.get('note', '')))}"
            f"<pre style='white-space:pre-wrap;margin:2px 0'>{html.escape(str(ev.get('sample', '')))}</pre></li>"
            for ev in item.get("evidence", [])
        ) or "<li>nothing to show</li>"
        rows.append(
            f"<details class='ft-check ft-check-{item['status']}' style='background:{bg};border-left:6px solid {fg};"
            f"padding:6px 10px;margin:4px 0;border-radius:4px'>"
            f"<summary><b style='color:{fg}'>{label}</b> <b>{html.escape(item['title'])}</b>: "
            f"{html.escape(item['summary'])}</summary><ul>{evidence}</ul></details>"
        )
    return "<div class='ft-checklist'>" + "".join(rows) + "</div>"


def _where_line(evidence: dict) -> str:
    """"line 3", or `file:3` when the check read several files (escaped: a file name is the person's)."""
    line = int(evidence.get("line") or 0)
    return f"{html.escape(str(evidence['source']))}:{line}" if evidence.get("source") else f"line {line}"


def sources_markdown(report: dict) -> list[str]:
    """Several files checked as one dataset: one line each, with what it gave and its own format."""
    return [f"- `{html.escape(source['name'])}`: {source['n_records']:,} records, {source['n_examples']:,} valid, "
            f"format **{source.get('format') or 'unknown'}**" for source in report.get("sources") or []]


def preference_markdown(preference: dict) -> list[str]:
    """What a file of preference pairs adds to the summary: the pair checks' findings, with their lines."""
    parts = []
    found = [(preference.get("identical_lines") or [], "with the same chosen and rejected answer"),
             (preference.get("empty_lines") or [], "with an empty answer"),
             ([line for line, _ in preference.get("duplicate_lines") or []], "repeating an earlier pair"),
             ([line for line, _ in preference.get("contradiction_lines") or []],
              "preferring the opposite answer of an earlier pair")]
    for lines, what in found:
        if lines:
            shown = ", ".join(map(str, lines[:10])) + (", …" if len(lines) > 10 else "")
            parts.append(f"⚠ {len(lines):,} pair{'s' if len(lines) != 1 else ''} {what} (line"
                         f"{'s' if len(lines) != 1 else ''} {shown}).")
    length = preference.get("length") or {}
    if length.get("compared"):
        parts.append(f"The chosen answer is longer in **{length['chosen_longer_share']:.0%}** of "
                     f"{length['compared']:,} pairs (chosen/rejected length: median ×{length['median_ratio']:.2f}, "
                     f"mean ×{length['mean_ratio']:.2f}); DPO learns length too when the data rewards it.")
    return parts


def summary_markdown(report: dict) -> str:
    tokens = report.get("tokens") or {}
    preference = report.get("preference")
    if preference:
        parts = [
            f"**{report['n_examples']:,} valid preference pairs** of {report['n_records']:,} records, "
            f"format **{html.escape(preference.get('title') or 'preference pairs')}**, "
            f"**{len(report['errors']):,} errors**, {len(report['warnings']):,} warnings "
            f"(checked in {report.get('seconds', 0):.1f} s).",
            *preference_markdown(preference),
        ]
    else:
        parts = [
            f"**{report['n_examples']:,} valid examples** of {report['n_records']:,} records, "
            f"format **{report.get('format') or 'unknown'}**, "
            f"**{len(report['errors']):,} errors**, {len(report['warnings']):,} warnings "
            f"(checked in {report.get('seconds', 0):.1f} s)."
        ]
    if report.get("sources"):
        parts.append(f"From **{len(report['sources'])} sources**:\n" + "\n".join(sources_markdown(report)))
    if tokens.get("per_example"):
        st = tokens["stats"]["total"]
        about = "" if tokens.get("exact", True) else "~"  # every figure marked when approximate
        parts.append(
            f"Tokens ({html.escape(tokens['encoding'])}, {'exact' if not about else '**approximate**'}): "
            f"**{about}{tokens['total']:,}** in all; per {'pair' if preference else 'example'} min {about}{st['min']:,}, "
            f"median {about}{st['median']:,.0f}, mean {about}{st['mean']:,.0f}, p95 {about}{st['p95']:,.0f}, "
            f"max {about}{st['max']:,}."
        )
        if about:
            from ftassist.data.tokens import approximate_note

            note = approximate_note(tokens, report.get("model"))
            parts.append("⚠ " + html.escape(note[:1].upper() + note[1:]) + ".")
    for cause in report.get("diagnosis") or []:  # the file's problem, said once before its rows
        where = "the whole file" if cause["lines"] == "file" else f"lines {cause['lines']}"
        if cause.get("source"):
            where = f"{cause['source']}: {where}"
        parts.append(f"⚠ **The file: {html.escape(cause['message'])}** ({where}, {cause['count']:,} records). "
                     f"Fix: {html.escape(cause['hint'])}."
                     + ("" if cause.get("fixable") else " **Fix & split cannot convert this: fix the file.**"))
    if report["errors"]:
        parts.append("Fix the errors below (each has a line and a hint), or press **Fix & split** to drop those records.")
    return "\n\n".join(parts)


def errors_frame(report: dict) -> pd.DataFrame:
    """One row per group of identical issues ("1-4,130"); a stored report without groups, one row per issue."""
    groups = report.get("error_groups")
    if groups is None:  # a report saved before issues were grouped
        issues = report["errors"][:MAX_ERROR_ROWS] + report["warnings"][: max(0, MAX_ERROR_ROWS - len(report["errors"]))]
        return pd.DataFrame([{c: i.get(c) for c in ERROR_COLUMNS} for i in issues], columns=ERROR_COLUMNS)
    rows = (groups + (report.get("warning_groups") or []))[:MAX_ERROR_ROWS]
    return pd.DataFrame([{"line": _group_where(g), "code": g["code"], "message": g["message"], "hint": g["hint"]}
                         for g in rows], columns=ERROR_COLUMNS)


def _group_where(group: dict) -> str:
    """The group's lines ("1-4,130"), as `file:1-4,130` when the check read several files."""
    if not group.get("source"):
        return group["lines"]
    return f"{group['source']}: the file" if group["lines"] == "file" else f"{group['source']}:{group['lines']}"


def source_of_row(report: dict, row: int, default: str) -> str:
    """The file the row's lines are in: its source's path when the check read several files, else `default`."""
    groups = report.get("error_groups")
    rows = (groups + (report.get("warning_groups") or [])) if groups is not None else \
        report["errors"] + report["warnings"]
    name = rows[row].get("source") if row < len(rows) else None
    return next((source["path"] for source in report.get("sources") or [] if source["name"] == name), default)


def first_line_of_row(report: dict, row: int) -> int:
    """The first line of the row's group (0: the file as a whole), for the record preview."""
    groups = report.get("error_groups")
    if groups is None:
        issues = report["errors"] + report["warnings"]
        return int(issues[row].get("line") or 0) if row < len(issues) else 0
    rows = groups + (report.get("warning_groups") or [])
    return int(rows[row]["first_line"] or 0) if row < len(rows) else 0


def token_histogram(report: dict) -> pd.DataFrame:
    import numpy as np

    values = (report.get("tokens") or {}).get("per_example") or []
    if not values:
        return pd.DataFrame({"tokens": [], "examples": []})
    counts, edges = np.histogram(np.asarray(values), bins=min(20, max(1, len(set(values)))))
    labels = [f"{int(edges[i]):,}-{int(edges[i + 1]):,}" for i in range(len(counts))]
    return pd.DataFrame({"tokens": labels, "examples": counts.astype(int)})


def _histogram(report: dict) -> gr.BarPlot:
    """The histogram with its bins in order (a BarPlot sorts text categories alphabetically)."""
    frame = token_histogram(report)
    return gr.BarPlot(value=frame, sort=list(frame["tokens"]))




def record_preview(app: Context, path: str, line: int) -> str:
    """The record at `line`, shown next to its error (never an exception: the preview must not break the page)."""
    try:
        return data.show_record(app, path, line).text
    except UseCaseError as exc:
        return f"(could not read the record: {exc})"


def _check(app: Context, session: Session, source: str, model: str | None, progress, *, keep_copy: bool = False,
           mapping: dict | None = None, more: list[str] | None = None) -> tuple[Session, dict]:
    """Run the check use case for the tab: its refusal as one clear line, its note as a warning. `more`: the
    other sources of a dataset made of several."""
    try:
        result = data.check_dataset(app, source, model=model, keep_copy=keep_copy, mapping=mapping,
                                    paths=more or None, progress=lambda fraction, desc: progress(fraction, desc=desc))
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    if result.note:
        gr.Warning(result.note)
    dataset = Dataset(path=result.path, report=result.report, model=model, mapping=mapping or None)
    return session.checked(dataset), result.report


def sources_of(file_paths, hub_ids: str | None) -> list[str]:
    """The uploads (one path or several) then the Hub ids typed (comma or line separated, `org/name:subset@split`),
    as the use case takes them."""
    files = [file_paths] if isinstance(file_paths, (str, Path)) else list(file_paths or [])
    hubs = [text.strip() for text in (hub_ids or "").replace("\n", ",").split(",") if text.strip()]
    return [str(path) for path in files if path] + [text if text.startswith("hf:") else f"hf:{text}" for text in hubs]


def check_dataset(app: Context, file_path, hub_id, model, session, progress=gr.Progress()):
    """Check the uploaded file(s) and/or Hub dataset(s): several make one dataset, each issue naming its file."""
    session = Session.of(session)
    sources = sources_of(file_path, hub_id)
    if not sources:
        raise gr.Error("Upload a dataset file (JSONL, JSON, CSV or Parquet) or type a Hugging Face dataset id.")
    # uploads are kept (their temporary files go away); a Hub dataset is already written under the data dir
    keep_copy = any(not source.startswith("hf:") for source in sources)
    session, report = _check(app, session, sources[0], model or None, progress, keep_copy=keep_copy,
                             more=sources[1:])
    return (
        session,
        summary_markdown(report),
        checklist_html(report["checklist"]),
        errors_frame(report),
        _histogram(report),
        gr.update(interactive=True),
    )


def show_preview(app: Context, session, evt: gr.SelectData):
    session = Session.of(session)
    if session.dataset is None or evt is None or evt.index is None:
        return ""
    row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    if row >= len(errors_frame(session.dataset.report)):
        return ""
    line = first_line_of_row(session.dataset.report, row)
    path = source_of_row(session.dataset.report, row, session.dataset.path)
    return record_preview(app, path, line) if line else "(this problem concerns the whole file)"


# the dropdowns of "Map your fields", in order: an example's parts, or a preference pair's two answers
MAPPED_ROLES = ("prompt", "input", "answer", "system", "chosen", "rejected")
NOT_MAPPED = "(none)"


def mapping_of(*paths) -> dict[str, str]:
    """The dropdowns' values as a mapping (role -> key path); an empty dropdown maps nothing."""
    return {role: path for role, path in zip(MAPPED_ROLES, paths) if path and path != NOT_MAPPED}


def mapping_panel(session):
    """The "Map your fields" panel: shown when the report proposes a mapping or the dataset was mapped,
    its dropdowns offering the keys found and set to the mapping in use (else the proposal)."""
    session = Session.of(session)
    dataset = session.dataset
    report = dataset.report if dataset is not None else {}
    current = (dataset.mapping if dataset is not None else None) or report.get("proposed_mapping")
    if not current:
        return (gr.update(visible=False),) + (gr.skip(),) * len(MAPPED_ROLES)
    choices = [NOT_MAPPED, *(report.get("found_keys") or [])]
    return (gr.update(visible=True),) + tuple(gr.update(choices=choices, value=current.get(role) or NOT_MAPPED)
                                              for role in MAPPED_ROLES)


def mapping_preview(app: Context, session, prompt, input_path, answer, system, chosen=None, rejected=None) -> str:
    """The first records as the chosen fields make them (a problem is said in the preview, never raised)."""
    session = Session.of(session)
    if session.dataset is None:
        return ""
    try:
        preview = data.preview_mapping(app, session.dataset.path,
                                       mapping_of(prompt, input_path, answer, system, chosen, rejected))
    except UseCaseError as exc:
        return f"(no preview: {exc})"
    text = json.dumps(preview.records, ensure_ascii=False, indent=2)
    return text + (f"\n\n(the mapping does not fit {preview.problem})" if preview.problem else "")


def check_with_mapping(app: Context, session, prompt, input_path, answer, system, chosen=None, rejected=None,
                       progress=gr.Progress()):
    """Check the dataset again through the chosen fields; the mapping stays with it for Fix & split."""
    session = Session.of(session)
    if session.dataset is None:
        raise gr.Error("Check a dataset first.")
    mapping = mapping_of(prompt, input_path, answer, system, chosen, rejected)
    session, report = _check(app, session, session.dataset.path, session.dataset.model, progress, mapping=mapping,
                             more=other_sources(session.dataset.report))
    return (session, summary_markdown(report), checklist_html(report["checklist"]), errors_frame(report),
            _histogram(report), gr.update(interactive=True))


def other_sources(report: dict) -> list[str]:
    """The files after the first of a dataset checked from several (the session's path is the first)."""
    return [source["path"] for source in (report.get("sources") or [])[1:]]


# The Test split choices: (label, value); "auto" leaves the share to the use case's rule.
TEST_SPLIT_CHOICES = [("auto: 10% from 200 examples up", "auto"), ("none", "0"), ("5%", "0.05"), ("10%", "0.1"),
                      ("15%", "0.15"), ("20%", "0.2")]


def held_out_share(choice) -> float | None:
    """The Test split control's value as the use case's `test_fraction` (None: the automatic rule)."""
    if choice in (None, "", "auto"):
        return None
    return float(choice)


def _split_counts(result, unit: str) -> str:
    """'**N train** and **M validation** examples', with the test split when Fix & split held one out."""
    if not result.n_test:
        return f"**{result.n_train:,} train** and **{result.n_valid:,} validation** {unit}"
    return (f"**{result.n_train:,} train**, **{result.n_valid:,} validation** and **{result.n_test:,} test** {unit} "
            "(the test split is for the Evaluate step: never trained on)")


def fix_and_split(app: Context, valid_fraction, seed, session, test_split="auto", progress=gr.Progress()):
    session = Session.of(session)
    if session.dataset is None:
        raise gr.Error("Check a dataset first.")
    progress(0.1, desc="cleaning and splitting")
    try:
        result = data.clean_dataset(app, session.dataset.path, valid_fraction=float(valid_fraction),
                                    seed=int(seed), mapping=session.dataset.mapping,
                                    paths=other_sources(session.dataset.report) or None,
                                    test_fraction=held_out_share(test_split))
    except UseCaseError as exc:
        raise gr.Error(str(exc)) from None
    session = session.split_into(data.split_of(result))
    if result.kind == "preference":
        message = (
            f"{_split_counts(result, 'pairs')} (seed {result.seed}, no prompt on both sides); dropped "
            f"{result.n_dropped_invalid:,} invalid records, {result.n_dropped_identical:,} "
            f"pairs with chosen = rejected, {result.n_dropped_empty:,} with an empty answer and "
            f"{result.n_dropped_duplicates:,} repeated pairs (listed in `{Path(result.dropped_path).name}`)."
        )
        return session, message, [str(path) for path in result.files]
    recovered = (f"Recovered **{result.n_recovered:,} records** ({result.repaired}). "
                 if result.n_recovered else "")
    message = recovered + (
        f"{_split_counts(result, 'examples')} (seed {result.seed}, no overlap); "
        f"dropped {result.n_dropped_invalid:,} invalid records, {result.n_dropped_duplicates:,} exact duplicates "
        f"and {result.n_dropped_empty:,} empty answers "
        f"(listed in `{Path(result.dropped_path).name}`)."
    )
    return session, message, [str(path) for path in result.files]


def session_report_handler(session, shown):
    """Show a report that reached the session another way (sample data, a page reload); skip if already shown."""
    session = Session.of(session)
    dataset, split = session.dataset, session.split
    key = dataset.path if dataset is not None else ""
    if dataset is None or key == shown:  # the same dataset (e.g. only the split changed): leave the tab as it is
        return (key,) + (gr.skip(),) * 6
    report = dataset.report
    note = f"{_split_counts(split, 'examples')} in `{split.folder}`." if split is not None else ""
    return (key, summary_markdown(report), checklist_html(report.get("checklist") or []), errors_frame(report),
            _histogram(report), gr.update(interactive=True), note)


def build(ctx: UIContext) -> None:
    gr.Markdown("### Check your dataset\nChat `messages`, alpaca/instruction, prompt/completion or ShareGPT; "
                "preference pairs for DPO (OpenAI DPO, TRL prompt/chosen/rejected, ShareGPT pairs); "
                "JSONL, JSON, CSV or Parquet. Every record is validated with its line number and a fix.")
    with gr.Row():
        upload = gr.File(label="Dataset file(s): several make one dataset",
                         file_types=[".jsonl", ".json", ".csv", ".tsv", ".parquet", ".ndjson"], type="filepath",
                         file_count="multiple")
        with gr.Column():
            hub_id = gr.Textbox(label="…or Hugging Face dataset id(s), comma separated",
                                placeholder="org/name, or org/name:subset@split")
            default = default_model()
            model = gr.Dropdown(model_options(), value=default, label="Target model (tokenizer and limits)",
                                info=model_info(default), allow_custom_value=True)
            check_btn = gr.Button("Check dataset", variant="primary")
    summary = gr.Markdown(elem_id="data-summary")
    checklist = gr.HTML(elem_id="data-checklist")
    with gr.Accordion("Errors and warnings (click a row to see the record)", open=True):
        errors = gr.Dataframe(headers=ERROR_COLUMNS, interactive=False, wrap=True, elem_id="data-errors")
        preview = gr.Code(label="Record", language="json", interactive=False)
    with gr.Group(visible=False, elem_id="data-mapping") as mapping_group:
        gr.Markdown("#### Map your fields\nThe records are in no known format: say which key holds what "
                    "(`list[].key` makes one example per item of the list; *chosen* and *rejected*, instead of "
                    "*answer*, make preference pairs).")
        with gr.Row():
            role_fields = [gr.Dropdown([NOT_MAPPED], label=role, allow_custom_value=True) for role in MAPPED_ROLES]
        mapping_shown = gr.Code(label="The first records, mapped", language="json", interactive=False)
        remap_btn = gr.Button("Check with this mapping")
    histogram = gr.BarPlot(x="tokens", y="examples", title="Tokens per example", elem_id="data-histogram")
    with gr.Row():
        valid_fraction = gr.Slider(0.0, 0.5, value=0.1, step=0.01, label="Validation fraction")
        test_split = gr.Dropdown(TEST_SPLIT_CHOICES, value="auto", label="Test split (for the Evaluate step)",
                                 elem_id="data-test-split")
        seed = gr.Number(value=42, precision=0, label="Seed")
        fix_btn = gr.Button("Fix & split", interactive=False)
    fix_summary = gr.Markdown()
    downloads = gr.File(label="Download", file_count="multiple", interactive=False)

    check_btn.click(ctx.bind(check_dataset), [upload, hub_id, model, ctx.session],
                    [ctx.session, summary, checklist, errors, histogram, fix_btn], api_name="check_dataset")
    errors.select(ctx.bind(show_preview), [ctx.session], [preview], api_name=False)
    model.input(model_info_update, [model], [model], api_visibility="private", show_progress="hidden")
    fix_btn.click(ctx.bind(fix_and_split), [valid_fraction, seed, ctx.session, test_split],
                  [ctx.session, fix_summary, downloads],
                  api_name="fix_and_split")
    ctx.session.change(mapping_panel, [ctx.session], [mapping_group, *role_fields], api_visibility="private",
                       show_progress="hidden")
    for role_field in role_fields:
        role_field.change(ctx.bind(mapping_preview), [ctx.session, *role_fields], [mapping_shown],
                          api_visibility="private", show_progress="hidden")
    remap_btn.click(ctx.bind(check_with_mapping), [ctx.session, *role_fields],
                    [ctx.session, summary, checklist, errors, histogram, fix_btn], api_name="check_with_mapping")
    shown = gr.State("")  # hand-off: a report put in the session elsewhere (sample data, reload) is shown here
    ctx.session.change(session_report_handler, [ctx.session, shown],
                       [shown, summary, checklist, errors, histogram, fix_btn, fix_summary], api_visibility="private",
                       show_progress="hidden")
