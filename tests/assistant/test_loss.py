"""The loss-curve rules on crafted series (no training, no database)."""

from __future__ import annotations

from ftassist.train import loss_rules as loss


def pts(train=(), valid=()):
    return ([{"step": s, "loss": v, "series": "train"} for s, v in train]
            + [{"step": s, "loss": v, "series": "validation"} for s, v in valid])


def kinds(findings):
    return [f.kind for f in findings]


def test_no_points():
    assert kinds(loss.diagnose([])) == ["no_data"]


def test_overfitting_with_numbers_and_concrete_remedies():
    f = loss.diagnose(pts([(10, 2.0), (50, 1.2), (100, 0.5)], [(20, 1.5), (50, 1.2), (100, 1.6)]),
                      learning_rate=2e-4, epochs=4, early_stopping_patience=None, n_examples=80,
                      epoch_at_step={50: 1.3})
    assert kinds(f)[0] == "overfitting"
    o = f[0]
    assert o.numbers["best_eval_step"] == 50 and o.numbers["last_eval_loss"] == 1.6
    assert o.numbers["eval_rise_pct"] == 33.3
    assert "1.200 at step 50 to 1.600 at step 100" in o.summary and "1.200 to 0.500" in o.summary
    text = " ".join(o.remedies)
    assert "early_stopping_patience is off" in text and "epoch 1.3 of 4: try 2" in text and "80 examples" in text


def test_small_eval_wobble_is_not_overfitting():
    f = loss.diagnose(pts([(1, 2.0), (2, 1.5), (3, 1.2)], [(1, 1.50), (2, 1.40), (3, 1.41)]))
    assert kinds(f) == ["healthy"]
    assert "2.000 at step 1 to 1.200 at step 3" in f[0].summary


def test_eval_and_train_both_rising_is_divergence():
    f = loss.diagnose(pts([(1, 1.0), (2, 1.1), (3, 1.3)], [(1, 1.0), (3, 1.4)]), learning_rate=1e-3)
    assert kinds(f)[0] == "diverging"
    assert "0.0005" in " ".join(f[0].remedies)


def test_spike():
    f = loss.diagnose(pts([(1, 2.0), (2, 1.5), (3, 3.1), (4, 1.4)]))
    assert kinds(f) == ["spike"]
    assert f[0].numbers == {"spike_step": 3, "spike_loss": 3.1, "min_before": 1.5, "ratio": 2.07}


def test_flat_and_memorised():
    assert kinds(loss.diagnose(pts([(1, 2.0), (2, 1.99), (3, 2.0), (4, 1.98)]))) == ["flat"]
    assert "memorised" in kinds(loss.diagnose(pts([(1, 2.0), (2, 0.5), (3, 0.01)])))


def test_markdown_lists_findings_and_remedies():
    md = loss.to_markdown(loss.diagnose(pts([(1, 2.0), (2, 1.5), (3, 3.1)])))
    assert md.startswith("- **Spike**") and "\n  - Halve the learning rate" in md
