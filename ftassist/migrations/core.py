"""Core tables: the datasets that were checked (listed by `ftassist datasets` and the app)."""

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
    # 2: the key/value settings table was never read nor written: settings live in the environment
    # and the data dir (usecases.context.Settings).
    """
    DROP TABLE IF EXISTS settings;
    """,
]
