"""`sdq import-sqlite`: moves the original service's SQLite database into Redis.

sqlite    reads and checks the original's rows (the contract's rules) and secrets
command   imports them in batches and prints the report and the SDQ_* settings
"""

__all__ = [
    "command",
    "sqlite",
]
