"""Reading a run's loss curves the way a practitioner would, with the numbers that show it.

Why its own module: "why did my loss go up?" has a handful of classic answers (overfitting,
a learning rate too high, a flat curve), each recognisable from the train and validation
series alone. These rules are pure functions of the points, so they are tested on crafted
series without any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EVAL_RISE = 0.02  # validation loss this much (relative) above its best = it rose
SPIKE_RATIO = 1.25  # a training loss this many times its running minimum = a spike
SPIKE_MIN_ABS = 0.1  # ...and at least this much above it (tiny losses are noisy)
CLIMB_RATIO = 1.05  # last training loss this much above the first = the run is diverging
FLAT_SHARE = 0.03  # training loss never fell more than 3% below its first value = flat
NEAR_ZERO = 0.05


@dataclass
class Finding:
    kind: str  # overfitting | spike | diverging | flat | memorised | healthy | no_data
    summary: str  # one sentence with the numbers
    remedies: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)


def _series(points: list[dict], name: str) -> list[tuple[int, float]]:
    out = [(int(p["step"] or 0), float(p["loss"])) for p in points
           if p.get("series") == name and p.get("loss") is not None]
    return sorted(out)


def _at_or_before(series: list[tuple[int, float]], step: int) -> tuple[int, float]:
    """The series point at `step`, else the last one before it, else the first one."""
    before = [p for p in series if p[0] <= step]
    return before[-1] if before else series[0]


def _f(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 100 else f"{x:,.1f}"


def diagnose(points: list[dict], learning_rate: float | None = None, epochs: float | None = None,
             early_stopping_patience: int | None = None, n_examples: int | None = None,
             epoch_at_step: dict[int, float] | None = None) -> list[Finding]:
    """Findings for a loss series (`jobs.loss_points` rows), most important first.

    The optional facts about the run (its learning rate, epochs, early-stopping patience,
    dataset size, epoch at each step) make the remedies concrete.
    """
    train = _series(points, "train")
    valid = _series(points, "validation")
    if not train and not valid:
        return [Finding("no_data", "No loss has been logged yet: the chart starts at the first logged step.")]
    findings: list[Finding] = []
    lr_text = f" (this run used {learning_rate:g}; try {learning_rate / 2:g})" if learning_rate else ""

    if len(valid) >= 2:
        best_i = min(range(len(valid)), key=lambda i: valid[i][1])
        best_step, best = valid[best_i]
        last_step, last = valid[-1]
        if best_i < len(valid) - 1 and last > best * (1 + EVAL_RISE):
            rise = (last - best) / best
            nums = {"best_eval_loss": best, "best_eval_step": best_step, "last_eval_loss": last,
                    "last_eval_step": last_step, "eval_rise_pct": round(rise * 100, 1)}
            if train:
                t0_step, t0 = _at_or_before(train, best_step)
                t1_step, t1 = train[-1]
                nums.update(train_loss_at_best=t0, train_loss_last=t1)
            if train and t1 < t0:
                epoch_hint = ""
                if epoch_at_step and best_step in epoch_at_step and epochs:
                    e = epoch_at_step[best_step]
                    epoch_hint = f" (validation was best at epoch {e:.1f} of {epochs:g}: try {max(1, round(e + 0.49))})"
                elif epochs:
                    epoch_hint = f" (this run used {epochs:g})"
                patience = ("early_stopping_patience is off in this run: set it to 2-3"
                            if not early_stopping_patience else
                            f"early_stopping_patience is {early_stopping_patience}: lower it to stop sooner")
                more = f" (you have {n_examples:,} examples)" if n_examples else ""
                findings.append(Finding(
                    "overfitting",
                    f"Validation loss rose from {_f(best)} at step {best_step} to {_f(last)} at step {last_step} "
                    f"(+{rise:.0%}) while training loss kept falling from {_f(t0)} to {_f(t1)}: the model is "
                    "memorising the training examples (overfitting).",
                    [f"Early stopping: keep the checkpoint from step {best_step} (lowest validation loss); {patience}.",
                     f"Fewer epochs{epoch_hint}.",
                     f"More and more varied examples{more}; remove near-duplicates.",
                     "A lower learning rate or LoRA rank also slows memorising."],
                    nums,
                ))
            else:
                findings.append(Finding(
                    "diverging",
                    f"Validation loss rose from {_f(best)} at step {best_step} to {_f(last)} at step {last_step} "
                    "and training loss did not fall either: the updates are too large (learning rate) or the data "
                    "changed along the run.",
                    [f"Lower the learning rate{lr_text} and add warmup.",
                     "Shuffle the data; check the examples seen after that step."],
                    nums,
                ))

    if len(train) >= 3:
        run_min = train[0][1]
        worst = None
        for step, loss in train[1:]:
            if loss > run_min * SPIKE_RATIO and loss - run_min > SPIKE_MIN_ABS:
                ratio = loss / run_min
                if worst is None or ratio > worst[2]:
                    worst = (step, loss, ratio, run_min)
            run_min = min(run_min, loss)
        first_step, first = train[0]
        last_step, last = train[-1]
        if worst is not None:
            step, loss, ratio, low = worst
            findings.append(Finding(
                "spike",
                f"Training loss spiked to {_f(loss)} at step {step}, {ratio:.1f}x its lowest value before that "
                f"({_f(low)}): a learning rate too high for this model and batch size, or a bad batch.",
                [f"Halve the learning rate{lr_text}; add warmup steps.",
                 f"Look at the examples trained around step {step} (very long, empty or malformed ones).",
                 "A larger effective batch (gradient accumulation) smooths the updates."],
                {"spike_step": step, "spike_loss": loss, "min_before": low, "ratio": round(ratio, 2)},
            ))
        elif last > first * CLIMB_RATIO:
            findings.append(Finding(
                "diverging",
                f"Training loss climbed from {_f(first)} at step {first_step} to {_f(last)} at step {last_step}: "
                "the run is diverging, almost always a learning rate that is too high.",
                [f"Lower the learning rate{lr_text}; add warmup.", "Check the data for broken examples."],
                {"first_loss": first, "last_loss": last},
            ))
        elif min(loss for _, loss in train) > first * (1 - FLAT_SHARE):
            findings.append(Finding(
                "flat",
                f"Training loss stayed flat ({_f(first)} at step {first_step}, {_f(last)} at step {last_step}): "
                "the model is barely learning.",
                [f"A higher learning rate{' (this run used ' + format(learning_rate, 'g') + ')' if learning_rate else ''}"
                 " or more steps.",
                 "Check that the answers are trained on (assistant messages present and not empty)."],
                {"first_loss": first, "last_loss": last},
            ))
        if last < NEAR_ZERO:
            findings.append(Finding(
                "memorised",
                f"Training loss is near zero ({_f(last)}): the model reproduces its training set word for word.",
                ["Watch validation loss; fewer epochs or more data."],
                {"last_loss": last},
            ))

    if not findings:
        if train:
            first_step, first = train[0]
            last_step, last = train[-1]
            text = (f"Training loss fell from {_f(first)} at step {first_step} to {_f(last)} at step {last_step} "
                    f"({(first - last) / first:.0%} lower)" if first else "Training loss was logged")
        else:
            text = "Only validation loss was logged"
        if valid:
            best_step, best = min(valid, key=lambda p: p[1])
            text += f"; validation loss is at its best so far ({_f(best)} at step {best_step})"
        else:
            text += "; there is no validation loss (add a validation file to see overfitting)"
        findings.append(Finding("healthy", text + ". Nothing alarming: small ups and downs between steps are "
                                "normal noise with small batches.", [], {}))
    return findings


def to_markdown(findings: list[Finding]) -> str:
    lines = []
    for f in findings:
        lines.append(f"- **{f.kind.replace('_', ' ').capitalize()}**: {f.summary}")
        lines += [f"  - {r}" for r in f.remedies]
    return "\n".join(lines)
