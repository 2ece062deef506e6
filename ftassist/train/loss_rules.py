"""Reading a run's loss curves the way a practitioner would, with the numbers that show it.

Why its own module: "why did my loss go up?" has a handful of classic answers (overfitting,
a learning rate too high, a flat curve), each recognisable from the train and validation
series alone. These rules are pure functions of the points, so they are tested on crafted
series without any training.

A DPO run is read by its own rules (`diagnose_dpo`), from its loss and TRL's reward metrics: preference
accuracy at chance, a margin that does not grow, chosen rewards falling with the rejected ones (both
log-probabilities dropping), a loss stuck at ln 2, and rewards exploding (a beta too low to hold the model).
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
    # overfitting | spike | diverging | flat | memorised | healthy | no_data; DPO: chosen_falling | rewards_exploding
    # | margins_flat | accuracy_at_chance | loss_at_ln2 | preference_overfitting
    kind: str
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


# -- DPO ------------------------------------------------------------------------------------------------
# A DPO run's loss is -log sigmoid(margin), where the margin is beta x (how much more the policy than the
# reference prefers the chosen answer). Its curves read differently from SFT's: the loss starts at ln 2
# (policy = reference), the implicit rewards (beta x log-ratio of policy to reference, per side) and the
# preference accuracy (share of pairs whose chosen reward beats the rejected one) tell what is learned.
LN2 = 0.6931471805599453
LN2_BAND = 0.02  # a DPO loss within this of ln 2 has not moved from where every DPO run starts
CHANCE_BAND = 0.1  # preference accuracy within this of 0.5 = no better than a coin
MARGIN_GROWTH = 0.05  # the reward margin must grow by at least this (in reward units) to count as growing
CHOSEN_DROP = 0.1  # a chosen reward this far below 0 (and falling) = the chosen answers' log-probs drop
LOW_BETA = 0.05  # below this beta the policy is barely held near the reference
EXPLODING_MARGIN = 5.0  # a reward margin past this (and still growing) = the policy ran away from the reference
EXPLODING_GAP = 50.0  # ...or a margin / beta past this many nats (a low beta hides the gap in small rewards)
MIN_POINTS = 3  # fewer logged steps say nothing about a trend


def _metric(rows: list[dict], key: str) -> list[tuple[int, float]]:
    out = [(int(r.get("step") or 0), float(r[key])) for r in rows if isinstance(r.get(key), (int, float))]
    return sorted(out)


def _tail(series: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The last third of a series (at least its last point): where the run has got to, less noisy than one step."""
    return series[-max(1, len(series) // 3):]


def _mean(series: list[tuple[int, float]]) -> float:
    return sum(v for _, v in series) / len(series)


def diagnose_dpo(train: list[dict], valid: list[dict] | None = None, beta: float | None = None,
                 learning_rate: float | None = None, n_pairs: int | None = None) -> list[Finding]:
    """Findings for a DPO run, most important first, from its logged rows.

    `train` and `valid` are the run's log and eval rows as the worker writes them: a step and TRL's keys,
    `loss`, `rewards/chosen`, `rewards/rejected`, `rewards/margins`, `rewards/accuracies` (eval rows with
    the `eval_` prefix). `beta`, the learning rate and the number of pairs make the remedies concrete.
    """
    valid = valid or []
    loss = _metric(train, "loss")
    accuracy = _metric(train, "rewards/accuracies")
    margins = _metric(train, "rewards/margins")
    chosen = _metric(train, "rewards/chosen")
    rejected = _metric(train, "rewards/rejected")
    eval_accuracy = _metric(valid, "eval_rewards/accuracies")
    eval_loss = _metric(valid, "eval_loss")
    if not loss and not margins and not eval_loss:
        return [Finding("no_data", "No DPO step has been logged yet: the curves start at the first logged step.")]
    findings: list[Finding] = []
    lr_text = f" (this run used {learning_rate:g})" if learning_rate else ""
    beta_text = f"beta {beta:g}" if beta else "beta"
    pairs_text = f" ({n_pairs:,} pairs)" if n_pairs else ""

    if len(chosen) >= MIN_POINTS and len(rejected) >= MIN_POINTS:
        (c0_step, c0), (c1_step, c1) = chosen[0], chosen[-1]
        r0, r1 = rejected[0][1], rejected[-1][1]
        if c1 < -CHOSEN_DROP and c1 < c0 - CHOSEN_DROP and r1 < r0:
            findings.append(Finding(
                "chosen_falling",
                f"The chosen answers' reward fell from {_f(c0)} at step {c0_step} to {_f(c1)} at step {c1_step} "
                f"while the rejected ones' fell from {_f(r0)} to {_f(r1)}: the margin grows only because the rejected "
                "answers drop faster, and the model makes its preferred answers less likely too (both log-probabilities "
                "fall, the known DPO failure; it ends in odd or degenerate text).",
                [f"Lower the learning rate{lr_text} and train fewer epochs: the drop grows with every step.",
                 f"A higher {beta_text} keeps the model nearer its reference.",
                 "Train SFT on the chosen answers first and start DPO from that run (Start from), so the chosen "
                 "answers are already likely.",
                 "Check the pairs: chosen and rejected that differ by a few tokens push both down (the Data step's "
                 "pair checks list near-identical pairs)."],
                {"first_chosen_reward": c0, "last_chosen_reward": c1, "first_rejected_reward": r0,
                 "last_rejected_reward": r1},
            ))

    if len(margins) >= MIN_POINTS:
        m0, (m1_step, m1) = margins[0][1], margins[-1]
        growing = m1 - m0
        gap = m1 / beta if beta else None  # the log-probability gap the margin stands for, in nats
        if growing > 0 and (m1 > EXPLODING_MARGIN or (gap is not None and gap > EXPLODING_GAP)):
            low = f" ({beta_text} is low: it barely holds the model near its reference)" if beta and beta < LOW_BETA \
                else ""
            findings.append(Finding(
                "rewards_exploding",
                f"The reward margin reached {_f(m1)} at step {m1_step}"
                + (f", a gap of {gap:,.0f} nats between chosen and rejected beyond the reference's" if gap else "")
                + f"{low}: the model moved far from its reference and over-optimises these pairs (chosen answers "
                "almost certain, rejected ones almost impossible, which rarely holds on new prompts).",
                [f"Raise {beta_text} (0.1 is usual; lower lets the model move further from where it starts).",
                 f"Fewer steps or epochs, or a lower learning rate{lr_text}.",
                 "Watch the validation preference accuracy: when it stops rising, stop."],
                {"last_margin": m1, "beta": beta, "log_prob_gap": gap},
            ))
        elif growing < MARGIN_GROWTH and m1 < EXPLODING_MARGIN:  # flat or shrinking: neither is learning
            findings.append(Finding(
                "margins_flat",
                f"The reward margin did not grow ({_f(m0)} at the start, {_f(m1)} at step {m1_step}): the model "
                "does not prefer the chosen answers any more than its reference does.",
                [f"A higher learning rate{lr_text} or more steps (DPO usually takes 5e-6 to 5e-5 full, 5e-5 to "
                 "5e-4 LoRA).",
                 "Check that chosen and rejected differ in what you want taught (not only in length or noise)."],
                {"first_margin": m0, "last_margin": m1},
            ))

    if len(accuracy) >= MIN_POINTS:
        tail = _tail(accuracy[1:] or accuracy)  # step 1: policy = reference, every reward 0, accuracy meaningless
        mean = _mean(tail)
        if abs(mean - 0.5) <= CHANCE_BAND:
            findings.append(Finding(
                "accuracy_at_chance",
                f"Preference accuracy stays near 0.5 ({mean:.2f} over steps {tail[0][0]}-{tail[-1][0]}): the model "
                "picks the chosen answer about as often as a coin would.",
                ["Look at the pairs: contradictory pairs (the same prompt with the answers swapped) or preferences "
                 "that follow no rule cannot be learned; the Data step's pair checks list them.",
                 f"More steps or a higher learning rate{lr_text}; more pairs{pairs_text} when they are few.",
                 "If the model cannot do the task yet, SFT first, then DPO from that run."],
                {"mean_accuracy": round(mean, 3), "from_step": tail[0][0], "to_step": tail[-1][0]},
            ))

    if len(loss) >= MIN_POINTS:
        later = loss[1:]
        if all(abs(value - LN2) <= LN2_BAND for _, value in later):
            first_step, last_step = later[0][0], later[-1][0]
            findings.append(Finding(
                "loss_at_ln2",
                f"The DPO loss stays at ln 2 = 0.693 (steps {first_step}-{last_step}, last {_f(loss[-1][1])}): "
                "where every DPO run starts, when the model and its reference agree, so it has not learned yet.",
                [f"A higher learning rate{lr_text}, or more steps: a loss at 0.693 means no update moved the model.",
                 "If it started from an SFT run, check that the run's adapter is the one trained (Start from), "
                 "and that the pairs' chosen and rejected answers differ."],
                {"last_loss": loss[-1][1], "ln2": round(LN2, 4)},
            ))

    if len(eval_accuracy) >= 2 and accuracy:
        best_i = max(range(len(eval_accuracy)), key=lambda i: eval_accuracy[i][1])
        (best_step, best), (last_step, last) = eval_accuracy[best_i], eval_accuracy[-1]
        if best_i < len(eval_accuracy) - 1 and best - last >= CHANCE_BAND and accuracy[-1][1] >= best:
            findings.append(Finding(
                "preference_overfitting",
                f"Validation preference accuracy fell from {best:.0%} at step {best_step} to {last:.0%} at step "
                f"{last_step} while training accuracy reached {accuracy[-1][1]:.0%}: the model learns these pairs, "
                "not the preference.",
                [f"Keep the checkpoint from step {best_step}; fewer epochs.",
                 f"A higher {beta_text}; more and more varied pairs{pairs_text}."],
                {"best_eval_accuracy": best, "best_eval_step": best_step, "last_eval_accuracy": last},
            ))

    if not findings:
        parts = []
        if accuracy:
            parts.append(f"preference accuracy {accuracy[-1][1]:.0%} at step {accuracy[-1][0]}")
        if margins:
            parts.append(f"reward margin {_f(margins[0][1])} → {_f(margins[-1][1])}")
        if loss:
            parts.append(f"loss {_f(loss[0][1])} → {_f(loss[-1][1])} (it starts at ln 2 = 0.693)")
        if eval_accuracy:
            parts.append(f"validation preference accuracy {eval_accuracy[-1][1]:.0%}")
        text = "DPO is learning the preference: " + ", ".join(parts) if parts else "Only validation loss was logged"
        findings.append(Finding("healthy", text + ". Nothing alarming; watch that the chosen reward does not keep "
                                "falling.", [], {}))
    return findings
