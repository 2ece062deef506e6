"""The DPO rules of `loss_rules.diagnose_dpo` on synthetic event series shaped as the worker logs them (TRL's
`loss` and `rewards/*` per step, `eval_` for evaluations): each classic failure is named with its numbers, a
healthy run is not alarmed about, and the assistant's loss explanation reads a DPO run with these rules."""

from __future__ import annotations

import json
import math

import pytest

from ftassist.train import loss_rules

LN2 = math.log(2)


def rows(steps: int, loss, chosen, rejected, accuracy, prefix: str = "") -> list[dict]:
    """One row per step 1..steps; each metric a function of the step (the margin is chosen - rejected, as TRL's)."""
    out = []
    for step in range(1, steps + 1):
        c, r = chosen(step), rejected(step)
        out.append({"type": "eval" if prefix else "log", "step": step, f"{prefix}loss": loss(step),
                    f"{prefix}rewards/chosen": c, f"{prefix}rewards/rejected": r,
                    f"{prefix}rewards/margins": c - r, f"{prefix}rewards/accuracies": accuracy(step)})
    return out


def kinds(findings) -> list[str]:
    return [f.kind for f in findings]


def healthy_train() -> list[dict]:
    """Margins grow from 0 to 1.2, chosen rewards rise a little, rejected fall, accuracy climbs to 0.9."""
    return rows(12, loss=lambda s: LN2 - 0.04 * (s - 1), chosen=lambda s: 0.02 * (s - 1),
                rejected=lambda s: -0.09 * (s - 1), accuracy=lambda s: 0.0 if s == 1 else min(0.9, 0.5 + 0.05 * s))


def test_a_healthy_run_is_not_alarmed_about():
    findings = loss_rules.diagnose_dpo(healthy_train(), beta=0.1)
    assert kinds(findings) == ["healthy"]
    assert "preference accuracy 90% at step 12" in findings[0].summary and "1.210" in findings[0].summary


def test_nothing_logged():
    assert kinds(loss_rules.diagnose_dpo([], [])) == ["no_data"]


def test_accuracy_stuck_near_chance():
    train = rows(12, loss=lambda s: LN2 - 0.005 * s, chosen=lambda s: 0.1 * s, rejected=lambda s: 0.1 * s - 0.01 * s,
                 accuracy=lambda s: 0.0 if s == 1 else (0.5 if s % 2 else 0.56))
    findings = loss_rules.diagnose_dpo(train, beta=0.1, learning_rate=5e-5, n_pairs=40)
    found = next(f for f in findings if f.kind == "accuracy_at_chance")
    assert found.numbers["mean_accuracy"] == pytest.approx((0.56 + 0.5 + 0.56) / 3, abs=0.001)  # steps 10-12
    assert "near 0.5" in found.summary and found.numbers["to_step"] == 12
    assert any("contradictory pairs" in r for r in found.remedies)
    assert any("5e-05" in r for r in found.remedies) and any("40 pairs" in r for r in found.remedies)
    # an accuracy that rose clear of chance is not
    assert "accuracy_at_chance" not in kinds(loss_rules.diagnose_dpo(healthy_train(), beta=0.1))


def test_margins_not_growing():
    train = rows(10, loss=lambda s: LN2 - 0.001 * s, chosen=lambda s: 0.001 * s, rejected=lambda s: 0.0,
                 accuracy=lambda s: 0.75)
    findings = loss_rules.diagnose_dpo(train, beta=0.1)
    flat = next(f for f in findings if f.kind == "margins_flat")
    assert flat.numbers == {"first_margin": 0.001, "last_margin": 0.01}
    assert "did not grow" in flat.summary


def test_chosen_rewards_falling_with_the_rejected_ones():
    """The margin grows, accuracy is high, and yet the chosen answers become less likely: both log-probs drop."""
    train = rows(12, loss=lambda s: LN2 - 0.05 * (s - 1), chosen=lambda s: -0.15 * (s - 1),
                 rejected=lambda s: -0.3 * (s - 1), accuracy=lambda s: 0.0 if s == 1 else 0.9)
    findings = loss_rules.diagnose_dpo(train, beta=0.1, learning_rate=5e-4)
    assert findings[0].kind == "chosen_falling"  # the most important: the model unlearns its good answers
    falling = findings[0]
    assert falling.numbers["last_chosen_reward"] == pytest.approx(-1.65)
    assert falling.numbers["last_rejected_reward"] == pytest.approx(-3.3)
    assert "both log-probabilities fall" in falling.summary and "-1.650" in falling.summary
    assert any("Lower the learning rate (this run used 0.0005)" in r for r in falling.remedies)
    assert any("SFT on the chosen answers first" in r for r in falling.remedies)
    # Rejected falling alone (chosen steady or rising) is what DPO should do.
    assert "chosen_falling" not in kinds(loss_rules.diagnose_dpo(healthy_train(), beta=0.1))


def test_loss_stuck_at_ln2():
    train = rows(8, loss=lambda s: LN2 + (0.004 if s % 2 else -0.003), chosen=lambda s: 0.0, rejected=lambda s: 0.0,
                 accuracy=lambda s: 0.0)
    findings = loss_rules.diagnose_dpo(train, beta=0.1, learning_rate=1e-7)
    stuck = next(f for f in findings if f.kind == "loss_at_ln2")
    assert "ln 2 = 0.693" in stuck.summary and "steps 2-8" in stuck.summary
    assert any("1e-07" in r for r in stuck.remedies)
    assert "loss_at_ln2" not in kinds(loss_rules.diagnose_dpo(healthy_train(), beta=0.1))


def test_rewards_exploding_with_a_low_beta():
    """Beta 0.01: a margin of 1.5 stands for a 150-nat gap; the same margin at beta 0.1 (15 nats) is fine."""
    train = rows(10, loss=lambda s: max(0.001, LN2 - 0.09 * s), chosen=lambda s: 0.05 * s,
                 rejected=lambda s: -0.1 * s, accuracy=lambda s: 1.0)
    exploding = loss_rules.diagnose_dpo(train, beta=0.01)
    found = next(f for f in exploding if f.kind == "rewards_exploding")
    assert found.numbers["log_prob_gap"] == pytest.approx(150.0)
    assert "beta 0.01 is low" in found.summary and "150 nats" in found.summary
    assert any("Raise beta 0.01" in r for r in found.remedies)
    assert "rewards_exploding" not in kinds(loss_rules.diagnose_dpo(train, beta=0.1))
    # a margin far past anything sane is exploding whatever the beta
    huge = rows(6, loss=lambda s: 0.0, chosen=lambda s: 2.0 * s, rejected=lambda s: -2.0 * s, accuracy=lambda s: 1.0)
    assert "rewards_exploding" in kinds(loss_rules.diagnose_dpo(huge, beta=0.5))


def test_validation_preference_accuracy_falling_while_training_accuracy_rises():
    valid = [{"type": "eval", "step": s, "eval_loss": 0.6, "eval_rewards/accuracies": a}
             for s, a in ((4, 0.7), (8, 0.8), (12, 0.62))]
    findings = loss_rules.diagnose_dpo(healthy_train(), valid, beta=0.1)
    found = next(f for f in findings if f.kind == "preference_overfitting")
    assert found.numbers == {"best_eval_accuracy": 0.8, "best_eval_step": 8, "last_eval_accuracy": 0.62}
    assert "step 8" in found.remedies[0]


def test_the_assistant_reads_a_dpo_run_with_the_dpo_rules(ftassist_home):
    """explain_loss on a DPO run in DuckDB: its reward metrics, not the SFT rules (whose 'flat' would mislead)."""
    from ftassist.assistant import intents
    from ftassist.store import get_store
    from ftassist.usecases import assistance
    from ftassist.usecases.context import Context

    store = get_store()
    spec = {"backend": "local", "base_model": "tiny-random", "method": "lora", "objective": "dpo", "dpo_beta": 0.1,
            "learning_rate": 0.0005, "train_file": "/data/pairs.jsonl"}
    store.execute("INSERT INTO jobs (id, backend, base_model, method, status, run_dir, spec_json, objective) "
                  "VALUES ('dpo-run', 'local', 'tiny-random', 'lora', 'succeeded', '/nonexistent', ?, 'dpo')",
                  [json.dumps(spec)])
    train = rows(12, loss=lambda s: LN2 - 0.05 * (s - 1), chosen=lambda s: -0.15 * (s - 1),
                 rejected=lambda s: -0.3 * (s - 1), accuracy=lambda s: 0.0 if s == 1 else 0.9)
    store.executemany("INSERT INTO job_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                      [["dpo-run", i, "log", e["step"], None, e["loss"], None, None, None, json.dumps(e), None]
                       for i, e in enumerate(train)])
    ctx = Context.open()
    explained = assistance.explain_loss(ctx, run_id="dpo-run")
    assert explained.objective == "dpo"
    assert [f["kind"] for f in explained.findings][0] == "chosen_falling"
    assert "DPO, beta 0.1" in explained.text and "both log-probabilities fall" in explained.text
    reply = intents.answer(ctx, "why did my loss go down but the answers got worse?")
    assert reply.intent == "loss" and "both log-probabilities fall" in reply.text
    assert "Reading loss curves" not in reply.text  # the SFT guide is not appended to a DPO reading
