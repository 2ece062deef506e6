"""Core tables: datasets that were checked, and key/value settings."""

MIGRATIONS = [
    """
    CREATE TABLE datasets (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        format VARCHAR,
        n_examples INTEGER,
        n_errors INTEGER,
        report_json VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE settings (
        key VARCHAR PRIMARY KEY,
        value VARCHAR
    );
    """,
]
