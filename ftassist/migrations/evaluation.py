"""Evaluation tables: each automatic evaluation (the data it read, by hash, and the generation settings) and
each model's figures in it, with their intervals and the verdict shown to the person."""

MIGRATIONS = [
    """
    CREATE TABLE evaluations (
        id VARCHAR PRIMARY KEY,
        data_path VARCHAR NOT NULL,
        data_hash VARCHAR NOT NULL,
        data_source VARCHAR,
        n_examples INTEGER NOT NULL,
        n_scored INTEGER NOT NULL,
        labels BOOLEAN NOT NULL,
        sampling_json VARCHAR NOT NULL,
        created_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE evaluation_scores (
        evaluation_id VARCHAR NOT NULL,
        model_id VARCHAR NOT NULL,
        display_name VARCHAR NOT NULL,
        base_model_id VARCHAR,
        position INTEGER NOT NULL,
        measures_json VARCHAR NOT NULL,
        verdict VARCHAR,
        PRIMARY KEY (evaluation_id, model_id)
    );
    """,
]
