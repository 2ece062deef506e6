"""Training jobs and the metrics ingested from their events files (issue: the Train step)."""

MIGRATIONS = [
    """
    CREATE TABLE jobs (
        id VARCHAR PRIMARY KEY,
        backend VARCHAR NOT NULL,
        base_model VARCHAR NOT NULL,
        method VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        run_dir VARCHAR NOT NULL,
        pid INTEGER,
        external_id VARCHAR,
        output_model VARCHAR,
        error VARCHAR,
        spec_json VARCHAR,
        events_offset BIGINT DEFAULT 0,
        created_at TIMESTAMP DEFAULT current_timestamp,
        started_at TIMESTAMP,
        finished_at TIMESTAMP
    );
    CREATE TABLE job_events (
        job_id VARCHAR NOT NULL,
        seq INTEGER NOT NULL,
        type VARCHAR NOT NULL,
        step INTEGER,
        epoch DOUBLE,
        loss DOUBLE,
        eval_loss DOUBLE,
        learning_rate DOUBLE,
        tokens_per_s DOUBLE,
        payload_json VARCHAR,
        ts DOUBLE,
        PRIMARY KEY (job_id, seq)
    );
    """,
    # 2: what the Train tab shows without re-reading every event (progress, losses, fault hints),
    # and the cancel request that tells a worker's death apart from a cancel.
    """
    ALTER TABLE jobs ADD COLUMN output_dir VARCHAR;
    ALTER TABLE jobs ADD COLUMN hint VARCHAR;
    ALTER TABLE jobs ADD COLUMN log_tail VARCHAR;
    ALTER TABLE jobs ADD COLUMN total_steps INTEGER;
    ALTER TABLE jobs ADD COLUMN last_step INTEGER;
    ALTER TABLE jobs ADD COLUMN first_loss DOUBLE;
    ALTER TABLE jobs ADD COLUMN final_loss DOUBLE;
    ALTER TABLE jobs ADD COLUMN best_eval_loss DOUBLE;
    ALTER TABLE jobs ADD COLUMN cancel_requested BOOLEAN DEFAULT false;
    ALTER TABLE jobs ADD COLUMN launcher VARCHAR;
    ALTER TABLE jobs ADD COLUMN updated_at TIMESTAMP;
    """,
    # 3: what a run optimises (sft on chats, dpo on preference pairs), so the run list can say it without
    # reading every spec; runs from before preference tuning were all SFT.
    """
    ALTER TABLE jobs ADD COLUMN objective VARCHAR DEFAULT 'sft';
    UPDATE jobs SET objective = 'sft' WHERE objective IS NULL;
    """,
]
