"""Datasets: reading, formats, checks, review, pages, samples, token statistics."""
