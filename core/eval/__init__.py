"""Evaluation: did the tuning work, and what did it cost?

prompts (prompt sets) · metrics (pure scoring) · stats (paired bootstrap, sign test) ·
retrieval (BM25 over a document folder) · ab (running a set through the sides) · report (tables,
Markdown, files) · verdict (what regressed, why, what to change) · judge (pairwise, both orders) ·
preferences (the person's picks) · heldout (loss on the run's eval split) · guard (the pipeline,
and the after-training regression guard)."""
