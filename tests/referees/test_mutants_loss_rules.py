"""The loss-curve rules against findings written out by hand: the cases that mutation testing showed untested
(`tools/mutation.py ftassist/train/loss_rules.py`). Each finding is compared whole, word for word, because its
summary and remedies are what the user reads; the numbers in them are worked out here from the crafted points,
and each threshold is tried on both sides.

A bug these tests found, fixed in `diagnose_dpo`: a reward margin that shrank (the model preferring the chosen
answers less than when it started) matched neither "exploding" nor "flat" (which asked |growth| < 0.05), so
the run was read as "DPO is learning the preference"; a margin that does not grow, flat or falling, is now
`margins_flat` (`test_a_margin_that_shrinks_is_not_learning_the_preference`).

Equivalent mutants (no observable difference, left alive on purpose; numbered as mutmut 3.8 numbers
the mutants of each function, so the numbers move when that function changes):
- diagnose 49, 50 and diagnose_dpo 338, 339: `best_i <= len - 1` (or `< len + 1`) also admits a best
  point that is the last one, where the rise (or fall) from best to last is 0 and never passes its threshold.
- diagnose 344 and diagnose_dpo 418: a healthy Finding built without its `{}` numbers gets `{}` by default.
- diagnose_dpo 230, 280: `< CHANCE_BAND` / `< LN2_BAND` instead of `<=` differ only when |mean - 0.5| is
  exactly 0.1 (|loss - ln 2| exactly 0.02); both differences are computed exactly (Sterbenz) and are then
  multiples of 2^-54 (2^-53), which the double nearest 0.1 (0.02) is not, so no input reaches the edge.
"""

from __future__ import annotations

from ftassist.train import loss_rules
from ftassist.train.loss_rules import Finding

LN2 = 0.6931471805599453
NOTHING_ALARMING = ". Nothing alarming: small ups and downs between steps are normal noise with small batches."


def points(train=(), valid=()) -> list[dict]:
    return ([{"step": s, "loss": v, "series": "train"} for s, v in train]
            + [{"step": s, "loss": v, "series": "validation"} for s, v in valid])


def dpo_rows(steps, **columns) -> list[dict]:
    """One logged row per step; `columns` maps a short name to its values (None: not logged at that step)."""
    keys = {"loss": "loss", "chosen": "rewards/chosen", "rejected": "rewards/rejected", "margin": "rewards/margins",
            "accuracy": "rewards/accuracies", "eval_loss": "eval_loss", "eval_accuracy": "eval_rewards/accuracies"}
    out = []
    for i, step in enumerate(steps):
        row = {"step": step}
        row.update({keys[name]: values[i] for name, values in columns.items() if values[i] is not None})
        out.append(row)
    return out


# == SFT ======================================================================================================
def test_nothing_logged():
    assert loss_rules.diagnose([]) == [Finding(
        "no_data", "No loss has been logged yet: the chart starts at the first logged step.")]
    # points without a loss are not points
    assert loss_rules.diagnose([{"step": 1, "loss": None, "series": "train"}])[0].kind == "no_data"


OVERFIT_SUMMARY = ("Validation loss rose from 1.200 at step 50 to 1.600 at step 100 (+33%) while training loss kept "
                   "falling from 1.300 to 0.500: the model is memorising the training examples (overfitting).")


def test_overfitting_whole_with_every_fact_about_the_run():
    train = [(10, 2.0), (40, 1.3), (100, 0.5)]  # no train point at step 50: the one before it (40) is used
    valid = [(20, 1.5), (50, 1.2), (100, 1.6)]
    found = loss_rules.diagnose(points(train, valid), learning_rate=2e-4, epochs=4, n_examples=1234,
                                epoch_at_step={50: 1.3})
    assert found == [Finding("overfitting", OVERFIT_SUMMARY, [
        "Early stopping: keep the checkpoint from step 50 (lowest validation loss); early_stopping_patience is off in "
        "this run: set it to 2-3.",
        "Fewer epochs (validation was best at epoch 1.3 of 4: try 2).",
        "More and more varied examples (you have 1,234 examples); remove near-duplicates.",
        "A lower learning rate or LoRA rank also slows memorising."],
        {"best_eval_loss": 1.2, "best_eval_step": 50, "last_eval_loss": 1.6, "last_eval_step": 100,
         "eval_rise_pct": 33.3, "train_loss_at_best": 1.3, "train_loss_last": 0.5})]


def test_overfitting_with_fewer_facts():
    train = [(10, 2.0), (40, 1.3), (100, 0.5)]
    valid = [(20, 1.5), (50, 1.2), (100, 1.6)]
    bare = loss_rules.diagnose(points(train, valid), early_stopping_patience=3)[0]
    assert bare.remedies == [
        "Early stopping: keep the checkpoint from step 50 (lowest validation loss); early_stopping_patience is 3: "
        "lower it to stop sooner.",
        "Fewer epochs.",
        "More and more varied examples; remove near-duplicates.",
        "A lower learning rate or LoRA rank also slows memorising."]
    # epochs known but not the epoch of the best step (or no epoch map at all): the run's epochs are named
    for epoch_map in (None, {}, {40: 1.0}):
        found = loss_rules.diagnose(points(train, valid), epochs=3, epoch_at_step=epoch_map)[0]
        assert found.remedies[1] == "Fewer epochs (this run used 3).", epoch_map
    # an epoch map without the epochs: nothing to compare with
    assert loss_rules.diagnose(points(train, valid), epoch_at_step={50: 1.3})[0].remedies[1] == "Fewer epochs."
    # best in the first epoch: never fewer than one
    early = loss_rules.diagnose(points(train, valid), epochs=2, epoch_at_step={50: 0.01})[0]
    assert early.remedies[1] == "Fewer epochs (validation was best at epoch 0.0 of 2: try 1)."


def test_overfitting_reads_the_first_train_point_when_none_comes_before_the_best_step():
    train = [(60, 2.0), (80, 1.5), (100, 0.5)]
    found = loss_rules.diagnose(points(train, [(20, 1.5), (50, 1.2), (100, 1.6)]))[0]
    assert found.kind == "overfitting"
    assert (found.numbers["train_loss_at_best"], found.numbers["train_loss_last"]) == (2.0, 0.5)


def test_validation_rising_while_training_loss_does_not_fall_is_divergence():
    train = [(10, 1.0), (50, 0.8), (100, 0.8)]  # as low at the end as at the best step: not falling
    valid = [(20, 1.5), (50, 1.0), (100, 1.5)]
    assert loss_rules.diagnose(points(train, valid), learning_rate=1e-3) == [Finding(
        "diverging",
        "Validation loss rose from 1.000 at step 50 to 1.500 at step 100 and training loss did not fall either: "
        "the updates are too large (learning rate) or the data changed along the run.",
        ["Lower the learning rate (this run used 0.001; try 0.0005) and add warmup.",
         "Shuffle the data; check the examples seen after that step."],
        {"best_eval_loss": 1.0, "best_eval_step": 50, "last_eval_loss": 1.5, "last_eval_step": 100,
         "eval_rise_pct": 50.0, "train_loss_at_best": 0.8, "train_loss_last": 0.8})]
    # validation alone: the same reading, without the training numbers and without a learning rate
    assert loss_rules.diagnose(points(valid=valid)) == [Finding(
        "diverging",
        "Validation loss rose from 1.000 at step 50 to 1.500 at step 100 and training loss did not fall either: "
        "the updates are too large (learning rate) or the data changed along the run.",
        ["Lower the learning rate and add warmup.", "Shuffle the data; check the examples seen after that step."],
        {"best_eval_loss": 1.0, "best_eval_step": 50, "last_eval_loss": 1.5, "last_eval_step": 100,
         "eval_rise_pct": 50.0})]


def test_a_validation_rise_counts_only_past_two_percent_and_after_the_best_step():
    train = [(1, 2.0), (2, 1.5), (3, 1.2)]
    assert loss_rules.diagnose(points(train, [(1, 1.5), (2, 1.0), (3, 1.02)]))[0].kind == "healthy"  # +2%: noise
    assert loss_rules.diagnose(points(train, [(1, 1.5), (2, 1.0), (3, 1.03)]))[0].kind == "overfitting"
    assert loss_rules.diagnose(points(train, [(1, 1.5), (3, 1.0)]))[0].kind == "healthy"  # the last is the best
    assert loss_rules.diagnose(points(train, [(3, 1.9)]))[0].kind == "healthy"  # one point is no trend


def test_a_spike_whole():
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.5), (3, 3.1), (4, 1.4)]), learning_rate=1e-4) == [Finding(
        "spike",
        "Training loss spiked to 3.100 at step 3, 2.1x its lowest value before that (1.500): a learning rate too "
        "high for this model and batch size, or a bad batch.",
        ["Halve the learning rate (this run used 0.0001; try 5e-05); add warmup steps.",
         "Look at the examples trained around step 3 (very long, empty or malformed ones).",
         "A larger effective batch (gradient accumulation) smooths the updates."],
        {"spike_step": 3, "spike_loss": 3.1, "min_before": 1.5, "ratio": 2.07})]


def test_the_worst_spike_is_named_and_the_first_of_equal_ones():
    found = loss_rules.diagnose(points([(1, 1.0), (2, 2.0), (3, 1.0), (4, 2.0), (5, 0.8)]))[0]
    assert (found.kind, found.numbers["spike_step"]) == ("spike", 2)
    found = loss_rules.diagnose(points([(1, 1.0), (2, 2.0), (3, 0.5), (4, 1.5), (5, 0.4)]))[0]
    assert found.numbers == {"spike_step": 4, "spike_loss": 1.5, "min_before": 0.5, "ratio": 3.0}


def test_a_spike_is_more_than_a_quarter_above_the_lowest_and_more_than_a_tenth():
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.6), (3, 2.0), (4, 1.0)]))[0].kind == "healthy"  # x1.25
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.6), (3, 2.01), (4, 1.0)]))[0].kind == "spike"
    # a small loss that doubles by less than a tenth is noise
    assert "spike" not in [f.kind for f in loss_rules.diagnose(points([(1, 0.2), (2, 0.08), (3, 0.16)]))]
    assert loss_rules.diagnose(points([(1, 0.5), (2, 0.25), (3, 0.375), (4, 0.2)]))[0].kind == "spike"
    # 0.1 above exactly (0.125 + 0.1 - 0.125 is 0.1 in floating point) is not more than 0.1
    assert "spike" not in [f.kind for f in loss_rules.diagnose(points([(1, 0.125), (2, 0.125 + 0.1), (3, 0.2)]))]


def test_a_climbing_training_loss_is_divergence():
    assert loss_rules.diagnose(points([(1, 1.0), (2, 1.02), (3, 1.06)])) == [Finding(
        "diverging",
        "Training loss climbed from 1.000 at step 1 to 1.060 at step 3: the run is diverging, almost always a "
        "learning rate that is too high.",
        ["Lower the learning rate; add warmup.", "Check the data for broken examples."],
        {"first_loss": 1.0, "last_loss": 1.06})]
    # 5% up is not yet a climb (it is flat)
    assert loss_rules.diagnose(points([(1, 1.0), (2, 1.02), (3, 1.05)]))[0].kind == "flat"


def test_a_flat_curve_whole_and_its_edge():
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.99), (3, 2.0), (4, 1.98)]), learning_rate=3e-5) == [Finding(
        "flat",
        "Training loss stayed flat (2.000 at step 1, 1.980 at step 4): the model is barely learning.",
        ["A higher learning rate (this run used 3e-05) or more steps.",
         "Check that the answers are trained on (assistant messages present and not empty)."],
        {"first_loss": 2.0, "last_loss": 1.98})]
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.99), (3, 2.0)]))[0].remedies[0] == \
        "A higher learning rate or more steps."
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.99), (3, 2.0)]), learning_rate=1.2345678e-4)[0].remedies[0] \
        == "A higher learning rate (this run used 0.000123457) or more steps."  # six significant digits
    # 3% below the first value is some learning
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.94), (3, 1.96)]))[0].kind == "healthy"
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.95), (3, 1.96)]))[0].kind == "flat"


def test_a_loss_near_zero_is_memorised():
    assert loss_rules.diagnose(points([(1, 2.0), (2, 0.5), (3, 0.01)])) == [Finding(
        "memorised",
        "Training loss is near zero (0.010): the model reproduces its training set word for word.",
        ["Watch validation loss; fewer epochs or more data."], {"last_loss": 0.01})]
    assert loss_rules.diagnose(points([(1, 2.0), (2, 0.5), (3, 0.05)]))[0].kind == "healthy"
    # two points are too few for any training rule
    assert loss_rules.diagnose(points([(1, 2.0), (2, 0.01)]))[0].kind == "healthy"


def test_healthy_readings_word_for_word():
    assert loss_rules.diagnose(points([(1, 2.0), (2, 1.5), (3, 1.2)], [(1, 1.5), (2, 1.4)])) == [Finding(
        "healthy", "Training loss fell from 2.000 at step 1 to 1.200 at step 3 (40% lower); validation loss is at "
        "its best so far (1.400 at step 2)" + NOTHING_ALARMING, [], {})]
    assert loss_rules.diagnose(points([(3, 1.2), (1, 2.0), (2, 1.5)]))[0].summary == (  # any order of points
        "Training loss fell from 2.000 at step 1 to 1.200 at step 3 (40% lower); there is no validation loss (add a "
        "validation file to see overfitting)" + NOTHING_ALARMING)
    assert loss_rules.diagnose(points(valid=[(5, 1.5)]))[0].summary == (
        "Only validation loss was logged; validation loss is at its best so far (1.500 at step 5)" + NOTHING_ALARMING)
    assert loss_rules.diagnose(points([(1, 0.0)]))[0].summary == (
        "Training loss was logged; there is no validation loss (add a validation file to see overfitting)"
        + NOTHING_ALARMING)
    # large losses with thousands separators; 100 is already large; a missing step is step 0
    assert loss_rules.diagnose([{"step": None, "loss": 1234.5, "series": "train"},
                                {"step": 3, "loss": 100.0, "series": "train"}])[0].summary.startswith(
        "Training loss fell from 1,234.5 at step 0 to 100.0 at step 3 (92% lower)")
    assert loss_rules.diagnose(points([(1, 99.5), (2, 9.0)]))[0].summary.startswith(
        "Training loss fell from 99.500 at step 1 to 9.000 at step 2")


def test_markdown_whole():
    findings = [Finding("preference_overfitting", "One.", ["First.", "Second."]), Finding("flat", "Two.")]
    assert loss_rules.to_markdown(findings) == (
        "- **Preference overfitting**: One.\n  - First.\n  - Second.\n- **Flat**: Two.")


# == DPO ======================================================================================================
def test_dpo_nothing_logged():
    assert loss_rules.diagnose_dpo([]) == [Finding(
        "no_data", "No DPO step has been logged yet: the curves start at the first logged step.")]
    # rows without any metric the rules read are no steps either
    assert loss_rules.diagnose_dpo([{"step": 1, "loss": None, "grad_norm": 1.0}])[0].kind == "no_data"


FALLING = dict(loss=[LN2, 0.6, 0.5, 0.4], chosen=[0.0, -0.2, -0.4, -0.6], rejected=[0.0, -0.5, -1.0, -1.5],
               margin=[0.0, 0.3, 0.6, 0.9], accuracy=[0.0, 0.8, 0.9, 0.9])
FALLING_SUMMARY = (
    "The chosen answers' reward fell from 0.000 at step 10 to -0.600 at step 40 while the rejected ones' fell from "
    "0.000 to -1.500: the margin grows only because the rejected answers drop faster, and the model makes its "
    "preferred answers less likely too (both log-probabilities fall, the known DPO failure; it ends in odd or "
    "degenerate text).")
FALLING_REMEDIES = [
    "Train SFT on the chosen answers first and start DPO from that run (Start from), so the chosen answers are "
    "already likely.",
    "Check the pairs: chosen and rejected that differ by a few tokens push both down (the Data step's pair checks "
    "list near-identical pairs)."]


def test_chosen_rewards_falling_whole():
    found = loss_rules.diagnose_dpo(dpo_rows([10, 20, 30, 40], **FALLING), beta=0.1, learning_rate=5e-4)
    assert found == [Finding("chosen_falling", FALLING_SUMMARY, [
        "Lower the learning rate (this run used 0.0005) and train fewer epochs: the drop grows with every step.",
        "A higher beta 0.1 keeps the model nearer its reference.", *FALLING_REMEDIES],
        {"first_chosen_reward": 0.0, "last_chosen_reward": -0.6, "first_rejected_reward": 0.0,
         "last_rejected_reward": -1.5})]
    bare = loss_rules.diagnose_dpo(dpo_rows([10, 20, 30, 40], **FALLING))[0]
    assert bare.remedies[:2] == ["Lower the learning rate and train fewer epochs: the drop grows with every step.",
                                 "A higher beta keeps the model nearer its reference."]


def test_chosen_falling_needs_three_points_of_each_and_every_drop():
    def reading(chosen, rejected):
        n = len(chosen)
        rows = dpo_rows(range(1, n + 1), chosen=chosen, rejected=rejected, accuracy=[0.0] + [0.9] * (n - 1))
        return "chosen_falling" in [f.kind for f in loss_rules.diagnose_dpo(rows, [{"step": 9, "eval_loss": 0.5}])]

    assert reading([0.0, -0.3, -0.6], [0.0, -0.5, -1.0])
    assert not reading([0.0, -0.3, -0.6], [0.0, -0.5, None])  # two rejected points
    assert not reading([0.0, None, -0.6], [0.0, -0.5, -1.0])  # two chosen points
    assert not reading([0.0, -0.05, -0.1], [0.0, -0.5, -1.0])  # ends at -0.1: not below it
    assert not reading([0.5, 0.2, 0.05], [0.0, -0.5, -1.0])  # fell, but is still above -0.1
    assert not reading([0.5, 0.2, -0.1], [0.0, -0.5, -1.0])  # fell to -0.1: not below it
    assert not reading([-0.5, -0.55, -0.5 - 0.1], [0.0, -0.5, -1.0])  # fell by 0.1 exactly: not by more
    assert reading([-0.5, -0.55, -0.61], [0.0, -0.5, -1.0])
    assert not reading([0.0, -0.3, -0.6], [-1.0, -0.5, -1.0])  # the rejected ones did not fall


def test_rewards_exploding_with_a_low_beta_whole():
    rows = dpo_rows([5, 10, 15], loss=[LN2, 0.3, 0.2], chosen=[0.0, 0.3, 0.5], rejected=[0.0, -0.5, -1.0],
                    margin=[0.0, 0.8, 1.5], accuracy=[0.0, 1.0, 1.0])
    assert loss_rules.diagnose_dpo(rows, beta=0.01) == [Finding(
        "rewards_exploding",
        "The reward margin reached 1.500 at step 15, a gap of 150 nats between chosen and rejected beyond the "
        "reference's (beta 0.01 is low: it barely holds the model near its reference): the model moved far from its "
        "reference and over-optimises these pairs (chosen answers almost certain, rejected ones almost impossible, "
        "which rarely holds on new prompts).",
        ["Raise beta 0.01 (0.1 is usual; lower lets the model move further from where it starts).",
         "Fewer steps or epochs, or a lower learning rate.",
         "Watch the validation preference accuracy: when it stops rising, stop."],
        {"last_margin": 1.5, "beta": 0.01, "log_prob_gap": 150.0})]


def test_rewards_exploding_without_a_beta_and_with_a_usual_one():
    rows = dpo_rows([1, 2, 3], margin=[0.0, 3.0, 6.0], loss=[LN2, 0.1, 0.01])
    assert loss_rules.diagnose_dpo(rows, learning_rate=1e-5) == [Finding(
        "rewards_exploding",
        "The reward margin reached 6.000 at step 3: the model moved far from its reference and over-optimises these "
        "pairs (chosen answers almost certain, rejected ones almost impossible, which rarely holds on new prompts).",
        ["Raise beta (0.1 is usual; lower lets the model move further from where it starts).",
         "Fewer steps or epochs, or a lower learning rate (this run used 1e-05).",
         "Watch the validation preference accuracy: when it stops rising, stop."],
        {"last_margin": 6.0, "beta": None, "log_prob_gap": None})]
    usual = loss_rules.diagnose_dpo(rows, beta=0.5)[0]
    assert usual.summary.startswith("The reward margin reached 6.000 at step 3, a gap of 12 nats between chosen and "
                                    "rejected beyond the reference's: the model moved far")
    assert usual.numbers == {"last_margin": 6.0, "beta": 0.5, "log_prob_gap": 12.0}


def test_rewards_exploding_past_five_or_fifty_nats_and_only_while_growing():
    def kinds(margins, beta=None):
        return [f.kind for f in loss_rules.diagnose_dpo(dpo_rows(range(1, len(margins) + 1), margin=margins),
                                                       beta=beta)]

    assert kinds([0.0, 2.0, 5.0]) == ["healthy"]  # 5 is not past 5
    assert kinds([0.0, 2.0, 5.01]) == ["rewards_exploding"]
    assert kinds([0.0, 2.0, 5.0], beta=0.1) == ["healthy"]  # a 50-nat gap is not past 50
    assert kinds([0.0, 2.0, 5.01], beta=0.1) == ["rewards_exploding"]
    assert kinds([0.0, 2.0, 3.0], beta=0.05)[0] == "rewards_exploding"  # 60 nats
    assert "is low" not in loss_rules.diagnose_dpo(dpo_rows([1, 2, 3], margin=[0.0, 2.0, 3.0]), beta=0.05)[0].summary
    assert "is low" in loss_rules.diagnose_dpo(dpo_rows([1, 2, 3], margin=[0.0, 2.0, 3.0]), beta=0.049)[0].summary
    assert kinds([8.0, 9.0, 8.0]) == ["healthy"]  # large but no longer growing
    assert kinds([5.0, 5.2, 5.5]) == ["rewards_exploding"]  # past 5 and growing, if only a little
    assert kinds([5.0, 5.0, 5.0]) == ["healthy"]  # neither growing nor small enough to call flat
    assert kinds([0.0, 7.0]) == ["healthy"]  # two points say nothing of a trend


def test_margins_flat_whole_and_its_edges():
    rows = dpo_rows([1, 2, 3], margin=[0.2, 0.21, 0.22], loss=[LN2, 0.6, 0.5])
    assert loss_rules.diagnose_dpo(rows, learning_rate=5e-6) == [Finding(
        "margins_flat",
        "The reward margin did not grow (0.200 at the start, 0.220 at step 3): the model does not prefer the chosen "
        "answers any more than its reference does.",
        ["A higher learning rate (this run used 5e-06) or more steps (DPO usually takes 5e-6 to 5e-5 full, 5e-5 to "
         "5e-4 LoRA).",
         "Check that chosen and rejected differ in what you want taught (not only in length or noise)."],
        {"first_margin": 0.2, "last_margin": 0.22})]

    def kinds(margins):
        return [f.kind for f in loss_rules.diagnose_dpo(dpo_rows(range(1, len(margins) + 1), margin=margins))]

    assert kinds([0.0625, 0.1, 0.0625 + 0.05]) == ["healthy"]  # grew by 0.05 exactly: enough
    assert kinds([0.5, 0.6, 0.54]) == ["margins_flat"]
    assert kinds([0.0, 0.5]) == ["healthy"]


def test_a_margin_that_shrinks_is_not_learning_the_preference():
    """A margin that fell (the model prefers the chosen answers less than when it started) is no healthy run."""
    rows = dpo_rows([1, 2, 3, 4], margin=[1.0, 0.8, 0.5, 0.2], loss=[0.3, 0.5, 0.6, 0.7])
    found = loss_rules.diagnose_dpo(rows)
    assert [f.kind for f in found] == ["margins_flat"]
    assert found[0].summary.startswith("The reward margin did not grow (1.000 at the start, 0.200 at step 4)")


CHANCE_REMEDIES = [
    "Look at the pairs: contradictory pairs (the same prompt with the answers swapped) or preferences that follow "
    "no rule cannot be learned; the Data step's pair checks list them."]


def test_accuracy_at_chance_whole():
    steps = list(range(10, 110, 10))
    accuracy = [0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.6]  # step 10 left out, then the last third
    rows = dpo_rows(steps, accuracy=accuracy, margin=[0.1 * i for i in range(10)])
    assert loss_rules.diagnose_dpo(rows, learning_rate=1e-4, n_pairs=1234) == [Finding(
        "accuracy_at_chance",
        "Preference accuracy stays near 0.5 (0.53 over steps 80-100): the model picks the chosen answer about as "
        "often as a coin would.",
        [*CHANCE_REMEDIES, "More steps or a higher learning rate (this run used 0.0001); more pairs (1,234 pairs) "
         "when they are few.", "If the model cannot do the task yet, SFT first, then DPO from that run."],
        {"mean_accuracy": 0.533, "from_step": 80, "to_step": 100})]
    bare = loss_rules.diagnose_dpo(rows)[0]
    assert bare.remedies[1] == "More steps or a higher learning rate; more pairs when they are few."


def test_the_accuracy_tail_is_a_third_of_the_steps_after_the_first():
    def chance(accuracy):
        rows = dpo_rows(range(1, len(accuracy) + 1), accuracy=accuracy, margin=[0.3 * i for i in range(len(accuracy))])
        return [f.numbers for f in loss_rules.diagnose_dpo(rows) if f.kind == "accuracy_at_chance"]

    assert chance([0.0, 0.9, 0.55]) == [{"mean_accuracy": 0.55, "from_step": 3, "to_step": 3}]  # at least one
    assert chance([0.5, 0.5, 0.9]) == []
    # seven steps: six after the first, the last two of them
    assert chance([0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.45]) == []
    assert chance([0.0, 0.9, 0.9, 0.9, 0.9, 0.6, 0.45]) == [{"mean_accuracy": 0.525, "from_step": 6, "to_step": 7}]
    assert chance([0.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.7, 0.6, 0.55, 0.45]) == [
        {"mean_accuracy": 0.533, "from_step": 8, "to_step": 10}]
    assert chance([0.0, 0.5]) == []  # two points say nothing
    assert chance([0.0, 0.9, 0.61]) == [] and chance([0.0, 0.9, 0.39]) == []
    assert chance([0.0, 0.9, 0.6]) != [] and chance([0.0, 0.9, 0.4]) != []


def test_loss_at_ln2_whole():
    rows = dpo_rows([2, 4, 6, 8], loss=[0.3, 0.69, 0.70, 0.68])  # the first logged step is left out
    assert loss_rules.diagnose_dpo(rows, learning_rate=1e-7) == [Finding(
        "loss_at_ln2",
        "The DPO loss stays at ln 2 = 0.693 (steps 4-8, last 0.680): where every DPO run starts, when the model and its "
        "reference agree, so it has not learned yet.",
        ["A higher learning rate (this run used 1e-07), or more steps: a loss at 0.693 means no update moved the model.",
         "If it started from an SFT run, check that the run's adapter is the one trained (Start from), and that the "
         "pairs' chosen and rejected answers differ."],
        {"last_loss": 0.68, "ln2": 0.6931})]
    assert loss_rules.diagnose_dpo(rows)[0].remedies[0].startswith("A higher learning rate, or more steps:")
    assert loss_rules.diagnose_dpo(dpo_rows([2, 4, 6], loss=[LN2, LN2, 0.67]))[0].kind == "healthy"  # 0.023 off
    assert loss_rules.diagnose_dpo(dpo_rows([2, 4, 6], loss=[LN2, LN2, 0.675]))[0].kind == "loss_at_ln2"
    assert loss_rules.diagnose_dpo(dpo_rows([2, 4], loss=[LN2, LN2]))[0].kind == "healthy"


PREFERENCE_TRAIN = dpo_rows([4, 8, 12], loss=[LN2, 0.5, 0.3], margin=[0.0, 0.5, 1.2], accuracy=[0.0, 0.85, 0.9])


def test_preference_overfitting_whole():
    valid = dpo_rows([4, 8, 12], eval_loss=[0.6, 0.5, 0.55], eval_accuracy=[0.7, 0.8, 0.62])
    assert loss_rules.diagnose_dpo(PREFERENCE_TRAIN, valid, beta=0.1, n_pairs=1234) == [Finding(
        "preference_overfitting",
        "Validation preference accuracy fell from 80% at step 8 to 62% at step 12 while training accuracy reached "
        "90%: the model learns these pairs, not the preference.",
        ["Keep the checkpoint from step 8; fewer epochs.", "A higher beta 0.1; more and more varied pairs (1,234 pairs)."],
        {"best_eval_accuracy": 0.8, "best_eval_step": 8, "last_eval_accuracy": 0.62})]
    assert loss_rules.diagnose_dpo(PREFERENCE_TRAIN, valid)[0].remedies[1] == \
        "A higher beta; more and more varied pairs."


def test_preference_overfitting_edges():
    def kinds(eval_accuracy, train=PREFERENCE_TRAIN):
        valid = dpo_rows(range(1, len(eval_accuracy) + 1), eval_accuracy=eval_accuracy)
        return [f.kind for f in loss_rules.diagnose_dpo(train, valid)]

    assert kinds([0.8, 0.7]) == ["preference_overfitting"]  # two evaluations are enough
    assert kinds([0.125 + 0.1, 0.125]) == ["preference_overfitting"]  # a fall of 0.1 exactly counts
    assert kinds([0.8, 0.75]) == ["healthy"]
    assert kinds([0.7, 0.8]) == ["healthy"]  # still rising
    assert kinds([0.8]) == ["healthy"]
    equal = dpo_rows([4, 8, 12], margin=[0.0, 0.5, 1.2], accuracy=[0.0, 0.85, 0.8])
    assert kinds([0.8, 0.6], train=equal) == ["preference_overfitting"]  # training accuracy reached the best
    lower = dpo_rows([4, 8, 12], margin=[0.0, 0.5, 1.2], accuracy=[0.0, 0.85, 0.79])
    assert kinds([0.8, 0.6], train=lower) == ["healthy"]
    assert [f.kind for f in loss_rules.diagnose_dpo([], dpo_rows([1, 2], eval_loss=[0.5, 0.6],
                                                                 eval_accuracy=[0.8, 0.6]))] == ["healthy"]


def test_dpo_healthy_readings_word_for_word():
    rows = dpo_rows([10, 20, 30, 40], loss=[LN2, 0.5, 0.4, 0.3], margin=[0.0, 0.4, 0.8, 1.2],
                    accuracy=[0.0, 0.8, 0.85, 0.9])
    valid = dpo_rows([20, 40], eval_loss=[0.5, 0.4], eval_accuracy=[0.8, 0.85])
    assert loss_rules.diagnose_dpo(rows, valid) == [Finding(
        "healthy", "DPO is learning the preference: preference accuracy 90% at step 40, reward margin 0.000 → 1.200, "
        "loss 0.693 → 0.300 (it starts at ln 2 = 0.693), validation preference accuracy 85%. Nothing alarming; "
        "watch that the chosen reward does not keep falling.", [], {})]
    # the loss alone is something to read; so is the validation loss alone
    assert loss_rules.diagnose_dpo(dpo_rows([1, 2, 3], loss=[LN2, 0.5, 0.4]))[0].summary.startswith(
        "DPO is learning the preference: loss 0.693 → 0.400 (it starts at ln 2 = 0.693). Nothing alarming")
    assert loss_rules.diagnose_dpo([], [{"step": 5, "eval_loss": 0.5}])[0].summary.startswith(
        "Only validation loss was logged. Nothing alarming")
    # a step that is not logged is step 0; a value that is not a number is no value
    assert loss_rules.diagnose_dpo([{"step": None, "loss": 0.7, "rewards/accuracies": 0.9},
                                    {"step": 3, "loss": 0.5, "rewards/margins": "n/a"}],
                                   [{"step": 3, "eval_rewards/accuracies": 0.7}])[0].summary.startswith(
        "DPO is learning the preference: preference accuracy 90% at step 0, loss 0.700 → 0.500 (it starts at "
        "ln 2 = 0.693), validation preference accuracy 70%.")
