"""The Evaluate station: models and generation, blind battles and votes, ratings, export.

Modules: models.py (registry + generation clients), battles.py (pre-generated battles,
serving them blind, votes, abuse checks), ratings.py (Bradley-Terry, Elo, win rates),
metrics.py (automatic metrics, LLM judge), export.py (votes CSV/Parquet, DPO pairs).
Nothing heavy is imported here.
"""
