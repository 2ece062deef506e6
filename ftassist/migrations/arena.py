"""Arena tables: models, battles, votes, judge verdicts (issue: the Evaluate step)."""

MIGRATIONS = [
    """
    CREATE TABLE arena_models (
        id VARCHAR PRIMARY KEY,
        kind VARCHAR NOT NULL,
        display_name VARCHAR NOT NULL,
        config_json VARCHAR NOT NULL,
        created_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE battles (
        id VARCHAR PRIMARY KEY,
        prompt VARCHAR NOT NULL,
        model_a VARCHAR NOT NULL,
        model_b VARCHAR NOT NULL,
        answer_a VARCHAR NOT NULL,
        answer_b VARCHAR NOT NULL,
        sampling_json VARCHAR,
        reference VARCHAR,
        flagged_reason VARCHAR,
        source VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE votes (
        id VARCHAR PRIMARY KEY,
        battle_id VARCHAR NOT NULL,
        voter VARCHAR NOT NULL,
        model_a VARCHAR NOT NULL,
        model_b VARCHAR NOT NULL,
        winner VARCHAR NOT NULL,
        ts TIMESTAMP DEFAULT current_timestamp,
        source VARCHAR DEFAULT 'arena',
        UNIQUE (battle_id, voter)
    );
    CREATE TABLE judge_verdicts (
        id VARCHAR PRIMARY KEY,
        battle_id VARCHAR NOT NULL,
        judge_model VARCHAR NOT NULL,
        winner VARCHAR NOT NULL,
        verdict_ab VARCHAR,
        verdict_ba VARCHAR,
        ts TIMESTAMP DEFAULT current_timestamp
    );
    """,
    # 2: what the voting page needs: which side was shown left per serve (keyed by an
    # opaque token, so the mapping never leaves the server), skips, the side the voter
    # clicked, and voters flagged for review.
    """
    CREATE TABLE battle_serves (
        token VARCHAR PRIMARY KEY,
        battle_id VARCHAR NOT NULL,
        voter VARCHAR NOT NULL,
        swapped BOOLEAN NOT NULL,
        served_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE battle_skips (
        battle_id VARCHAR NOT NULL,
        voter VARCHAR NOT NULL,
        ts TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (battle_id, voter)
    );
    CREATE TABLE voter_flags (
        voter VARCHAR PRIMARY KEY,
        reason VARCHAR NOT NULL,
        n_votes INTEGER,
        agreement DOUBLE,
        expected DOUBLE,
        p_value DOUBLE,
        flagged_at TIMESTAMP DEFAULT current_timestamp
    );
    ALTER TABLE votes ADD COLUMN choice VARCHAR;
    """,
    # 3: the judge's own words for each order, so a verdict can be read and questioned later.
    """
    ALTER TABLE judge_verdicts ADD COLUMN explanation_ab VARCHAR;
    ALTER TABLE judge_verdicts ADD COLUMN explanation_ba VARCHAR;
    """,
    # 4: a removed model keeps its row (marked, not deleted), so the votes it got keep their names
    # and the leaderboard can say "(removed)"; battles with it are no longer served.
    """
    ALTER TABLE arena_models ADD COLUMN removed_at TIMESTAMP;
    """,
    # 5: a vote that breaks a voting rule (too fast, rate limit, a one-sided burst) is kept with its reason
    # and left out of ratings and exports; the leaderboard says how many.
    """
    ALTER TABLE votes ADD COLUMN flagged_reason VARCHAR;
    """,
    # 6: the preference loop: a DPO run trained on the votes a model got (parent), and what became of it:
    # training -> finishing (registering its model, generating battles against the parent) -> done | failed.
    """
    CREATE TABLE preference_loops (
        id VARCHAR PRIMARY KEY,
        parent_model VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        pairs INTEGER NOT NULL,
        votes INTEGER NOT NULL,
        usable_votes INTEGER NOT NULL,
        pairs_path VARCHAR,
        status VARCHAR NOT NULL DEFAULT 'training',
        child_model VARCHAR,
        battles INTEGER,
        message VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp,
        finished_at TIMESTAMP
    );
    """,
    # 7: voters who are hard to fake: each serve, vote and skip keeps the client's hashed address and the
    # time (epoch seconds) it happened, for the reading time, the per-address limits and the burst test, and so
    # that expired serves and skips can be deleted; a voter's own prompt waits for the admin's review; the
    # upstream calls made for own prompts, for their budgets.
    """
    ALTER TABLE battle_serves ADD COLUMN address_hash VARCHAR;
    ALTER TABLE battle_serves ADD COLUMN served_epoch DOUBLE;
    ALTER TABLE battle_skips ADD COLUMN skipped_epoch DOUBLE;
    ALTER TABLE votes ADD COLUMN address_hash VARCHAR;
    ALTER TABLE votes ADD COLUMN voted_epoch DOUBLE;
    ALTER TABLE battles ADD COLUMN review VARCHAR;
    UPDATE battles SET review = 'pending' WHERE source = 'voter';
    CREATE TABLE arena_calls (
        ts_epoch DOUBLE NOT NULL,
        address_hash VARCHAR,
        voter VARCHAR,
        calls INTEGER NOT NULL
    );
    """,
    # 8: one person, one vote per battle across sign-in: the browser's anonymous (cookie) voter linked to the
    # Hugging Face account it signed in as (both ids as stored in votes: a random id and a keyed hash).
    """
    CREATE TABLE voter_links (
        account VARCHAR NOT NULL,
        alias VARCHAR NOT NULL,
        linked_epoch DOUBLE,
        PRIMARY KEY (account, alias)
    );
    """,
]
