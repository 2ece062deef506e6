import pandas as pd
import pytest

from ftassist import store as store_mod
from ftassist.arena import battles, export, ratings


@pytest.fixture(autouse=True)
def no_rate_limit():
    battles.rate_limiter.reset()
    yield
    battles.rate_limiter.reset()


def cast(store, battle_id, voter, winner_side):
    """Vote so that the stored winner is `winner_side` (model_a / model_b / tie)."""
    st = store
    prompt, a, b = st.query_rows("SELECT prompt, answer_a, answer_b FROM battles WHERE id = ?", [battle_id])[0]
    view = battles._serve(st, battle_id, prompt, a, b, voter=voter)
    if winner_side == "tie":
        return battles.vote(store, view.token, voter, "tie")
    left_is_a = view.answer_a == a
    choice = "A" if (winner_side == "model_a") == left_is_a else "B"
    reveal = battles.vote(store, view.token, voter, choice)
    assert reveal.winner == winner_side
    return reveal


def test_votes_export_csv_and_parquet(tmp_path, store):
    st = store_mod.get_store()
    st.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES ('ft', 'hf', 'My FT', '{}')")
    bid = battles.add_battle(store, "p", "ft", "base", "x", "y")
    cast(store, bid, "u1", "model_a")
    cast(store, bid, "u2", "tie")
    n = export.export_votes(store, tmp_path / "v.csv")
    assert n == 2
    df = pd.read_csv(tmp_path / "v.csv")
    assert list(df.columns) == export.VOTE_COLUMNS
    assert set(df["model_a"]) == {"My FT"} and set(df["model_a_id"]) == {"ft"}
    assert sorted(df["winner"]) == ["model_a", "tie"]
    assert export.export_votes(store, tmp_path / "v.parquet") == 2
    pq = pd.read_parquet(tmp_path / "v.parquet")
    assert len(pq) == 2 and set(pq["voter"]) == {"u1", "u2"}
    with pytest.raises(ValueError, match="csv or parquet"):
        export.export_votes(store, tmp_path / "v.xlsx")


def test_dpo_export_is_readable_by_datasets_and_trl(tmp_path, store):
    from datasets import load_dataset
    from trl.data_utils import is_conversational

    won_by_a = battles.add_battle(store, "Capital of France?", "m1", "m2", "Paris.", "Lyon.")
    won_by_b = battles.add_battle(store, "2+2?", "m1", "m2", "5", "4")
    tied = battles.add_battle(store, "Hi", "m1", "m2", "Hello", "Hey")
    split = battles.add_battle(store, "Colour?", "m1", "m2", "Red", "Blue")
    leaky = battles.add_battle(store, "Who?", "m1", "m2", "I am Claude", "A helper")
    cast(store, won_by_a, "u1", "model_a")
    cast(store, won_by_a, "u2", "model_a")
    cast(store, won_by_a, "u3", "model_b")  # majority still model_a
    cast(store, won_by_b, "u1", "model_b")
    cast(store, tied, "u1", "tie")
    cast(store, split, "u1", "model_a")
    cast(store, split, "u2", "model_b")
    cast(store, leaky, "u1", "model_b")

    out = tmp_path / "dpo.jsonl"
    assert export.export_dpo(store, out) == 2
    ds = load_dataset("json", data_files=str(out), split="train")
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    rows = {r["prompt"][0]["content"]: r for r in ds}
    assert set(rows) == {"Capital of France?", "2+2?"}
    assert rows["Capital of France?"]["chosen"] == [{"role": "assistant", "content": "Paris."}]
    assert rows["Capital of France?"]["rejected"] == [{"role": "assistant", "content": "Lyon."}]
    assert rows["2+2?"]["chosen"][0]["content"] == "4"
    assert all(is_conversational(r) for r in ds)
    assert ds[0]["prompt"][-1]["role"] == "user"

    plain = tmp_path / "plain.jsonl"
    assert export.export_dpo(store, plain, conversational=False) == 2
    pds = load_dataset("json", data_files=str(plain), split="train")
    assert not is_conversational(pds[0]) and isinstance(pds[0]["chosen"], str)


CSV = """model_a,model_b,winner,voter,timestamp
alpha,beta,model_a,u1,2024-05-01T12:00:00
alpha,beta,tie (bothbad),,
beta,gamma,model_c,u2,
alpha,alpha,model_b,u3,
,beta,tie,u4,
alpha,beta,model_b,u5,yesterday
beta,alpha,tie,u6,1714564800
"""


def test_import_votes_reports_bad_lines_by_number(tmp_path, store):
    path = tmp_path / "votes.csv"
    path.write_text(CSV)
    result = export.import_votes(store, path)
    assert [line for line, _ in result.errors] == [4, 5, 6, 7]
    messages = dict(result.errors)
    assert "model_c" in messages[4] and "same model" in messages[5]
    assert "model_a is empty" in messages[6] and "timestamp" in messages[7]
    assert result.imported == 0 and ratings.votes_frame(store).empty  # all or nothing by default

    result = export.import_votes(store, path, skip_bad=True)
    assert result.imported == 3 and result.rows == 7
    df = ratings.votes_frame(store)
    assert sorted(df["winner"]) == ["model_a", "tie", "tie (bothbad)"]
    assert set(df["voter"]) == {"u1", "import", "u6"}
    rows = ratings.leaderboard(ratings.votes_frame(store), rounds=20)
    assert {r["model"] for r in rows} == {"alpha", "beta"}


def test_import_maps_registered_names_and_checks_header(tmp_path, store):
    st = store_mod.get_store()
    st.execute("INSERT INTO arena_models (id, kind, display_name, config_json) VALUES ('ft-1', 'hf', 'My FT', '{}')")
    good = tmp_path / "good.csv"
    good.write_text("model_a,model_b,winner\nMy FT,base,model_a\n")
    assert export.import_votes(store, good).imported == 1
    assert ratings.votes_frame(store)["model_a"].tolist() == ["ft-1"]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,winner\nx,y,tie\n")
    result = export.import_votes(store, bad)
    assert result.errors[0][0] == 1 and "model_a, model_b" in result.errors[0][1]
