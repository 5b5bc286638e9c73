"""The collector's store: the database and everything that reads or writes it.

Owns the connection and dialects (db.py: SQLite or PostgreSQL), the schema and migrations
and the batch/window tables (store.py), samples as one block of columns per batch
(sample_blocks.py) and their readers (sample_reads.py), the hash chain and key history
(store_chain.py), series identity (series_table.py), source ownership (ownership.py), the
gauge folds (store_folds.py), frozen results (store_results.py), tokens (token_table.py),
the plain records it hands out (records.py), read deadlines (deadline.py) and the audit
trail of acts on them (audit.py). May import evaluation/, the agent's wire format and the
shared base; never intake/, results/, reporting/, web/, commands/ or central/.
"""
