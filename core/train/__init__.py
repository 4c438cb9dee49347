"""Training: the run folder, runs, the worker process, preflight, trainers and callbacks."""
